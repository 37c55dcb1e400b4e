//! The home's supervisor: one detached process per tuna home that starts every local step.
//!
//! `tuna-shim --supervisor DIR` becomes the supervisor of `DIR` (`HOME/supervisor/`) unless one
//! already holds `DIR/lock`. It listens on `DIR/sock`; for each connection it forks a *waiter*
//! (no exec: a copy of this small, single-threaded process) that reads the launch spec, claims
//! the attempt, starts the script (the step's one exec) and records how it ended. A waiter
//! leaves the supervisor's session, so killing the supervisor never reaches a running step,
//! and a waiter that outlives it still writes its exit record. The supervisor reaps its
//! waiters and exits once it has had none and no connection for a while
//! (`TUNA_SUPERVISOR_IDLE_MS`, default 30 s) or when its socket was removed.
//!
//! It must stay single-threaded: forking is only safe in a process with one thread.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The socket launchers connect to.
pub const SOCKET: &str = "sock";
/// Held (`flock`) by the live supervisor; holds its pid.
pub const LOCK: &str = "lock";

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
                waiters: 0,
            };
            supervisor.serve();
            std::process::exit(0)
        }
        // The listener and the lock stay with the child.
        _ => Ok("ready"),
    }
}

fn idle_after() -> Duration {
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

/// The running supervisor.
struct Supervisor {
    listener: UnixListener,
    lock: File,
    sock: std::path::PathBuf,
    /// The socket file's inode: another one at the path means we were replaced.
    inode: u64,
    idle: Duration,
    /// Waiters forked and not yet reaped.
    waiters: usize,
}

impl Supervisor {
    fn serve(mut self) {
        let mut last = Instant::now();
        loop {
            self.reap();
            if self.waiters == 0 && (last.elapsed() >= self.idle || !self.socket_is_ours()) {
                break;
            }
            if self.poll(Duration::from_millis(200)) && self.accept_all() > 0 {
                last = Instant::now();
            }
        }
        // Launchers that connected before the socket went away still get their waiter.
        if self.socket_is_ours() {
            let _ = fs::remove_file(&self.sock);
        }
        self.accept_all();
    }

    fn socket_is_ours(&self) -> bool {
        fs::symlink_metadata(&self.sock).is_ok_and(|m| m.ino() == self.inode)
    }

    /// Waits up to `timeout` for a connection; whether one is there.
    fn poll(&self, timeout: Duration) -> bool {
        let mut fds = libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut fds, 1, timeout.as_millis() as libc::c_int) };
        n > 0 && fds.revents & libc::POLLIN != 0
    }

    /// Forks a waiter for every pending connection; how many.
    fn accept_all(&mut self) -> usize {
        let mut n = 0;
        while let Ok((conn, _)) = self.listener.accept() {
            n += 1;
            if self.fork_waiter(conn).is_ok() {
                self.waiters += 1;
            }
        }
        n
    }

    fn fork_waiter(&self, conn: UnixStream) -> io::Result<()> {
        conn.set_nonblocking(false)?;
        // SAFETY: this process has one thread; the child only runs our own code and exits.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                // The waiter must not keep the supervisor's lock or socket: a new supervisor
                // takes over while waiters of the old one still run.
                close(self.listener.as_raw_fd());
                close(self.lock.as_raw_fd());
                let fd = conn.into_raw_fd();
                std::process::exit(super::waiter::main(fd))
            }
            _ => Ok(()),
        }
    }

    fn reap(&mut self) {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {
            self.waiters = self.waiters.saturating_sub(1);
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
