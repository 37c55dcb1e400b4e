//! The home's supervisor: one detached process per tuna home that starts every local step.
//!
//! `tuna-shim --supervisor DIR` becomes the supervisor of `DIR` (`HOME/supervisor/`) unless one
//! already holds `DIR/lock`. It listens on `DIR/sock` and hands each connection to an idle
//! *waiter* (over the waiter's control socket, `SCM_RIGHTS`), forking a new one (no exec: a
//! copy of this small, single-threaded process) only when none is idle. A waiter reads the
//! launch spec, claims the attempt in the run's journal, starts the script (the step's one
//! process), records how it ended, and says `i` when it is idle again: a step costs one
//! process, not three. A waiter leaves the supervisor's session, so killing the supervisor
//! never reaches a running step, and a waiter that outlives it still records its step's end
//! (then sees its control socket closed and exits). The supervisor exits once no waiter is
//! busy and no connection came for a while (`TUNA_SUPERVISOR_IDLE_MS`, default 30 s) or when
//! its socket was removed; its idle waiters exit with it.
//!
//! It must stay single-threaded: forking is only safe in a process with one thread.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The socket launchers connect to. Its name and the lock's carry the version of the
/// protocol launchers and waiters speak, so that a supervisor of an older tuna still running
/// in the home is left alone (its waiters read a spec to its end, not one line per launch).
pub const SOCKET: &str = "v2.sock";
/// Held (`flock`) by the live supervisor; holds its pid.
pub const LOCK: &str = "v2.lock";
/// How long the supervisor waits for a connection before it looks at its socket file again.
const POLL_PERIOD: Duration = Duration::from_millis(200);

/// `tuna-shim --supervisor DIR`. Prints `ready` once a supervisor of its own listens, or
/// `running` when another holds the lock, and returns; the supervisor goes on detached.
pub(crate) fn start(dir: &Path) -> i32 {
    match try_start(dir) {
        Ok(word) => {
            println!("{word}");
            0
        }
        Err(e) => {
            println!(
                "error cannot start the supervisor in {}: {e}",
                dir.display()
            );
            1
        }
    }
}

fn try_start(dir: &Path) -> io::Result<&'static str> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Ok("running"),
            _ => Err(e),
        };
    }
    // We hold the lock: a socket file left by a dead supervisor is stale.
    let sock = dir.join(SOCKET);
    match fs::remove_file(&sock) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = {
        let (_dir, path) = socket_path(dir, SOCKET)?;
        UnixListener::bind(path)?
    };
    listener.set_nonblocking(true)?;
    let inode = fs::metadata(&sock)?.ino();
    io::stdout().flush()?;
    // SAFETY: this process has one thread; the child only runs our own code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: setsid has no preconditions; the child of a fork leads no group.
            unsafe { libc::setsid() };
            let mut lock = lock;
            let _ = lock.set_len(0);
            let _ = writeln!(lock, "{}", std::process::id());
            detach_stdio();
            let supervisor = Supervisor {
                listener,
                lock,
                sock,
                inode,
                idle: idle_after(),
                waiters: Vec::new(),
            };
            supervisor.serve();
            std::process::exit(0)
        }
        // The listener and the lock stay with the child.
        _ => Ok("ready"),
    }
}

/// How long the supervisor stays without work (`TUNA_SUPERVISOR_IDLE_MS`, default 30 s).
pub(crate) fn idle_after() -> Duration {
    std::env::var("TUNA_SUPERVISOR_IDLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_millis)
}

/// Points the standard streams at /dev/null (the launcher that started us reads until EOF).
fn detach_stdio() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: dup2 onto a standard fd with a valid, open fd.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// A waiter the supervisor forked: it runs one launch at a time and asks for the next one
/// over `ctl` (one byte, `i`, when it is idle again).
struct Waiter {
    pid: libc::pid_t,
    ctl: UnixStream,
    idle: bool,
}

/// The running supervisor.
struct Supervisor {
    listener: UnixListener,
    lock: File,
    sock: std::path::PathBuf,
    /// The socket file's inode: another one at the path means we were replaced.
    inode: u64,
    idle: Duration,
    /// Waiters forked and still alive, idle or busy.
    waiters: Vec<Waiter>,
}

impl Supervisor {
    fn serve(mut self) {
        let mut last = Instant::now();
        // The socket file is looked at once per poll period, not on every wake-up (two a
        // step): a replaced supervisor hands over within that period either way.
        let mut looked = Instant::now();
        loop {
            self.reap();
            let busy = self.waiters.iter().any(|w| !w.idle);
            if busy {
                last = Instant::now();
            }
            let replaced = looked.elapsed() >= POLL_PERIOD && {
                looked = Instant::now();
                !self.socket_is_ours()
            };
            if replaced || (!busy && last.elapsed() >= self.idle) {
                break;
            }
            if self.poll(POLL_PERIOD) && self.accept_all() > 0 {
                last = Instant::now();
            }
        }
        // Launchers that connected before the socket went away still get their waiter.
        if self.socket_is_ours() {
            let _ = fs::remove_file(&self.sock);
        }
        self.accept_all();
        // Idle waiters see their control socket close and exit; busy ones finish first.
    }

    fn socket_is_ours(&self) -> bool {
        fs::symlink_metadata(&self.sock).is_ok_and(|m| m.ino() == self.inode)
    }

    /// Waits up to `timeout` for a connection or a waiter's word; whether a connection is
    /// there.
    fn poll(&mut self, timeout: Duration) -> bool {
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.listener.as_raw_fd())
            .chain(self.waiters.iter().map(|w| w.ctl.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll on a vector of valid pollfds.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis() as libc::c_int,
            )
        };
        if n <= 0 {
            return false;
        }
        let mut gone = Vec::new();
        for (i, fd) in fds.iter().enumerate().skip(1) {
            if fd.revents != 0 && !self.hear(i - 1) {
                gone.push(i - 1);
            }
        }
        for i in gone.into_iter().rev() {
            self.waiters.swap_remove(i);
        }
        fds[0].revents & libc::POLLIN != 0
    }

    /// Reads what waiter `i` said; false once its control socket is closed (it exited).
    fn hear(&mut self, i: usize) -> bool {
        let waiter = &mut self.waiters[i];
        let mut buf = [0u8; 16];
        match (&waiter.ctl).read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                if buf[..n].contains(&b'i') {
                    waiter.idle = true;
                }
                true
            }
            Err(e) => {
                e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
            }
        }
    }

    /// Gives every pending connection to a waiter; how many.
    fn accept_all(&mut self) -> usize {
        let mut n = 0;
        while let Ok((conn, _)) = self.listener.accept() {
            n += 1;
            let _ = self.dispatch(conn);
        }
        n
    }

    /// Hands `conn` to an idle waiter, or to a new one. A connection no waiter takes is
    /// dropped: its launcher sees it closed and launches again.
    fn dispatch(&mut self, conn: UnixStream) -> io::Result<()> {
        conn.set_nonblocking(false)?;
        while let Some(i) = self.waiters.iter().position(|w| w.idle) {
            let waiter = &mut self.waiters[i];
            if super::fd_pass::send(waiter.ctl.as_raw_fd(), conn.as_raw_fd()).is_ok() {
                waiter.idle = false;
                return Ok(());
            }
            // It went away while idle.
            self.waiters.swap_remove(i);
        }
        let waiter = self.fork_waiter(conn)?;
        self.waiters.push(waiter);
        Ok(())
    }

    fn fork_waiter(&self, conn: UnixStream) -> io::Result<Waiter> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: this process has one thread; the child only runs our own code and exits.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                // The waiter must not keep the supervisor's lock, socket or the other
                // waiters' control sockets: a new supervisor takes over while waiters of the
                // old one still run, and a waiter must see the supervisor's end close.
                close(self.listener.as_raw_fd());
                close(self.lock.as_raw_fd());
                close(ours.as_raw_fd());
                for w in &self.waiters {
                    close(w.ctl.as_raw_fd());
                }
                std::mem::forget(ours);
                std::process::exit(super::waiter::main(
                    conn.into_raw_fd(),
                    theirs.into_raw_fd(),
                ))
            }
            pid => {
                ours.set_nonblocking(true)?;
                Ok(Waiter {
                    pid,
                    ctl: ours,
                    idle: false,
                })
            }
        }
    }

    fn reap(&mut self) {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        loop {
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            self.waiters.retain(|w| w.pid != pid);
        }
    }
}

fn close(fd: RawFd) {
    // SAFETY: closes an fd this forked child inherited and will not use.
    unsafe { libc::close(fd) };
}

/// The path to reach `dir/name` by, shorter than a socket address allows (108 bytes) even when
/// `dir` is deep: `/proc/self/fd/N/name` through an open handle on `dir`, kept alive by the
/// returned file until the socket is bound or connected.
pub(crate) fn socket_path(
    dir: &Path,
    name: &str,
) -> io::Result<(Option<File>, std::path::PathBuf)> {
    let direct = dir.join(name);
    if direct.as_os_str().len() < 100 {
        return Ok((None, direct));
    }
    let handle = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    let via = Path::new("/proc/self/fd")
        .join(handle.as_raw_fd().to_string())
        .join(name);
    Ok((Some(handle), via))
}
