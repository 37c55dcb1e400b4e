//! A waiter: a process the home's supervisor forks to run launches, one at a time, and keeps
//! for the next ones.
//!
//! Once, it blocks its signals and leaves the supervisor's session. Then, for each connection
//! it is handed, and for each launch spec its launcher sends on it (one line each; the
//! launcher keeps the connection from one step to its next): it claims the attempt in the
//! run's journal (so a second launch of the same attempt never runs the script again), runs
//! the script (see [`super::attempt`]), appends the exit record to the journal and says
//! `exited RECORD` to the launcher if it still listens. It says `claimed` once the script has
//! run for [`super::attempt::A_WHILE`], or with `exited` for a shorter one (`taken` at once
//! when another launch owns the attempt). When the launcher closes the connection, the waiter
//! writes `i` on its control socket (idle again) and waits for the next connection. It exits
//! when that socket closes (its supervisor is gone: at once when idle or held between two
//! launches, else once its step has ended) or when a stop signal came while it was idle or
//! held.

use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::journal::{self, Claimed, Entry};
use super::layout;
use super::proc_id::ProcId;
use super::signals::Signals;
use super::spec::LaunchSpec;

/// Serves the connection `conn`, then every one the supervisor hands over `ctl`; the process
/// exit code.
pub(crate) fn main(conn: RawFd, ctl: RawFd) -> i32 {
    // SAFETY: the supervisor hands over two open sockets that nothing else in this process
    // owns.
    let (conn, ctl) = unsafe { (OwnedFd::from_raw_fd(conn), UnixStream::from_raw_fd(ctl)) };
    let Ok(signals) = Signals::block() else {
        return 1;
    };
    // Leave the supervisor's session, so that a kill of its group does not reach the jobs.
    // SAFETY: setsid has no preconditions; a forked child leads no group.
    unsafe { libc::setsid() };
    let Ok(me) = ProcId::current() else {
        return 1;
    };
    let mut journals = Journals::default();
    let mut next = Some(conn);
    while let Some(conn) = next.take() {
        // A stop signal that came while idle: leave the connection unanswered (its launcher
        // launches again) and exit.
        if signals.drain_stop() {
            return 0;
        }
        let conn = UnixStream::from(conn);
        if hold(&conn, &ctl, me, &signals, &mut journals) == Held::Stopped {
            return 0;
        }
        drop(conn);
        // Its launcher let go of it: idle again, unless the supervisor is gone.
        if (&ctl).write_all(b"i").is_err() {
            return 0;
        }
        next = super::fd_pass::receive(ctl.as_raw_fd()).ok().flatten();
    }
    0
}

/// How a launcher's hold on this waiter ended.
#[derive(Debug, PartialEq)]
enum Held {
    /// It closed the connection.
    Released,
    /// A stop signal came between two launches.
    Stopped,
}

/// Runs the launches a launcher sends on `conn`, one after the other: it keeps the connection
/// from one step to its next, so a launch costs no connection and no word with the
/// supervisor.
fn hold(
    conn: &UnixStream,
    ctl: &UnixStream,
    me: ProcId,
    signals: &Signals,
    journals: &mut Journals,
) -> Held {
    let mut reader = BufReader::new(conn);
    let wait = hold_for();
    // The base environment of the connection's last launch, for the next ones that do not
    // send it again.
    let mut env = None;
    loop {
        if reader.buffer().is_empty() {
            match readable(conn, ctl, signals, wait) {
                Ready::Readable => {}
                // Let go of a launcher that launched nothing for a while: the supervisor
                // counts this waiter busy while it is held, and would never go idle. A launch
                // sent meanwhile finds the connection closed, unread, and goes to the
                // supervisor.
                Ready::TimedOut => return Held::Released,
                Ready::Stop => return Held::Stopped,
            }
        }
        match LaunchSpec::read_line_from(&mut reader) {
            Ok(Some(mut spec)) => {
                if spec.same_env {
                    // Only a launcher that sent one on this connection may leave it out.
                    let Some(last) = env.take() else {
                        let _ = say(conn, "error tuna-shim: a launch without its environment");
                        return Held::Released;
                    };
                    spec.base_env = last;
                }
                serve(conn, &spec, me, signals, journals);
                env = Some(spec.base_env);
            }
            Ok(None) => return Held::Released,
            Err(e) => {
                let _ = say(conn, &format!("error tuna-shim: reading the launch: {e}"));
                return Held::Released;
            }
        }
    }
}

/// How long a launcher may hold a waiter without launching: a second, or the supervisor's
/// idle time when that is shorter.
fn hold_for() -> Duration {
    super::daemon::idle_after().min(Duration::from_secs(1))
}

/// What came first while a waiter is held.
enum Ready {
    /// The connection has something to read, or ended.
    Readable,
    TimedOut,
    /// A stop signal, or the supervisor is gone.
    Stop,
}

/// Waits until `conn` has something to read (or ended), a stop signal comes, the supervisor
/// is gone (`ctl` closed: a waiter whose supervisor is gone takes no more launches, so every
/// waiter of the home belongs to its live supervisor) or `wait` has passed. Other signals
/// (the end of an earlier script, a cancel meant for an earlier job) are dropped.
fn readable(conn: &UnixStream, ctl: &UnixStream, signals: &Signals, wait: Duration) -> Ready {
    let deadline = Instant::now() + wait;
    let mut fds = [
        libc::pollfd {
            fd: conn.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: signals.fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        // The supervisor hands a held waiter nothing: its control socket stirs only when
        // the supervisor is gone.
        libc::pollfd {
            fd: ctl.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: poll on three valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, left.as_millis() as libc::c_int) };
        if n < 0 {
            continue;
        }
        if fds[1].revents != 0
            && signals
                .take()
                .iter()
                .any(|s| super::signals::STOP_SIGNALS.contains(s))
        {
            return Ready::Stop;
        }
        // A launch sent as the supervisor went away stays unread: its launcher takes it to
        // the next supervisor.
        if fds[2].revents != 0 {
            return Ready::Stop;
        }
        if fds[0].revents != 0 {
            return Ready::Readable;
        }
        if n == 0 {
            return Ready::TimedOut;
        }
    }
}

/// The journals this waiter appended to lately, with what it has read of them.
#[derive(Default)]
struct Journals(HashMap<PathBuf, (journal::Writer, journal::Index)>);

impl Journals {
    fn get(&mut self, path: &Path) -> io::Result<&mut (journal::Writer, journal::Index)> {
        if !self.0.contains_key(path) {
            // A waiter serves one run at a time, mostly: keep a few, not every run's.
            if self.0.len() >= 4 {
                self.0.clear();
            }
            let writer = journal::Writer::open(path)?;
            self.0
                .insert(path.to_path_buf(), (writer, journal::Index::claims_only()));
        }
        Ok(self.0.get_mut(path).expect("inserted above"))
    }
}

fn serve(
    conn: &UnixStream,
    spec: &LaunchSpec,
    me: ProcId,
    signals: &Signals,
    journals: &mut Journals,
) {
    let mut announced = false;
    let dir = spec.job.attempt_dir.clone();
    if let Err(e) = run(conn, spec, me, signals, journals, &mut announced) {
        let message = format!("tuna-shim: {}: {e}", dir.display());
        if !announced {
            let _ = say(conn, &format!("error {message}"));
        }
        log(&dir, &message);
    }
}

fn run(
    conn: &UnixStream,
    spec: &LaunchSpec,
    me: ProcId,
    signals: &Signals,
    journals: &mut Journals,
    announced: &mut bool,
) -> io::Result<()> {
    let attempt = spec.job.attempt_dir.clone();
    let (writer, index) = journals.get(&journal::path_for(&attempt))?;
    match writer.claim(index, &attempt, me)? {
        Claimed::Already(owner) => {
            let _ = say(conn, &format!("taken {}", to_json(&owner)?));
            *announced = true;
        }
        Claimed::Now => {
            let claimed = format!("claimed {}", to_json(&me)?);
            // Every process sees the claim once it is appended, which is what keeps a command
            // from running twice after a kill. It goes to disk once the script has run for a
            // while, and the launcher hears of it then: a step of a few milliseconds costs no
            // sync, and its launcher one wake-up (`claimed` and `exited` come in one write). A
            // power loss in those first milliseconds may run it again on resume, as it may any
            // step whose store records had not reached the disk yet.
            let record = super::attempt::supervise(&attempt, spec, signals, || {
                if let Err(e) = writer.sync() {
                    log(&attempt, &format!("tuna-shim: syncing the journal: {e}"));
                }
                let _ = say(conn, &claimed);
                *announced = true;
            });
            let exited = format!("exited {}", to_json(&record)?);
            let line = if *announced {
                exited
            } else {
                format!("{claimed}\n{exited}")
            };
            if let Err(e) = writer.append(&Entry::Exit { attempt, record }) {
                // The script ran: its launcher hears that it was claimed, and no more.
                if !*announced {
                    let _ = say(conn, &claimed);
                    *announced = true;
                }
                return Err(e);
            }
            *announced = true;
            // The launcher makes the outcome durable in its store; when it is gone, the
            // journal is the only record, so it is synced now.
            if !say(conn, &line) {
                writer.sync()?;
            }
        }
    }
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> io::Result<String> {
    serde_json::to_string(value).map_err(io::Error::other)
}

/// Appends `message` to the attempt's shim.log (created only now: most waiters never need it).
fn log(dir: &Path, message: &str) {
    if let Ok(mut file) = layout::open_log(dir, layout::SHIM_LOG) {
        let _ = writeln!(file, "{message}");
    }
}

/// Writes one line to the launcher; whether it could (it may be gone, which is no error).
fn say(conn: &UnixStream, line: &str) -> bool {
    let mut out: &UnixStream = conn;
    // One write: a line in two would cost the launcher two wake-ups.
    out.write_all(format!("{line}\n").as_bytes()).is_ok()
}
