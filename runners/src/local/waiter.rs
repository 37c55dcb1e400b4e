//! A waiter: a process the home's supervisor forks to run launches, one at a time, and keeps
//! for the next ones.
//!
//! Once, it blocks its signals and leaves the supervisor's session. Then, for each connection
//! it is handed: it reads the launch spec, claims the attempt in the run's journal (so a second
//! launch of the same attempt never runs the script again), says `claimed` or `taken`, runs the
//! script (see [`super::attempt`]), appends the exit record to the journal, writes `i` on its
//! control socket (idle again: before the launcher hears of the end, so that its next launch
//! finds this waiter) and says `exited RECORD` to the launcher if it still listens. Then it
//! waits for the next connection. It exits when that socket closes (its supervisor is gone)
//! or when a stop signal came while it was idle.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

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
        let mut idle = Idle {
            ctl: &ctl,
            said: None,
        };
        serve(
            UnixStream::from(conn),
            me,
            &signals,
            &mut journals,
            &mut idle,
        );
        if !idle.say() {
            return 0;
        }
        next = super::fd_pass::receive(ctl.as_raw_fd()).ok().flatten();
    }
    0
}

/// The waiter's `i` to its supervisor: said once per job, as soon as the job's exit record is
/// in the journal and before the launcher is told, so that a launcher that launches its next
/// step at once finds this waiter idle (a job that ends otherwise says it after).
struct Idle<'a> {
    ctl: &'a UnixStream,
    /// Whether the supervisor could be told, once it was.
    said: Option<bool>,
}

impl Idle<'_> {
    /// Says `i` unless it was said already; whether the supervisor is still there.
    fn say(&mut self) -> bool {
        *self
            .said
            .get_or_insert_with(|| (&*self.ctl).write_all(b"i").is_ok())
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
                .insert(path.to_path_buf(), (writer, journal::Index::default()));
        }
        Ok(self.0.get_mut(path).expect("inserted above"))
    }
}

fn serve(
    conn: UnixStream,
    me: ProcId,
    signals: &Signals,
    journals: &mut Journals,
    idle: &mut Idle<'_>,
) {
    let mut announced = false;
    let mut dir = None;
    if let Err(e) = run(
        &conn,
        me,
        signals,
        (journals, idle),
        &mut dir,
        &mut announced,
    ) {
        let place = dir
            .as_deref()
            .map_or(String::new(), |d: &Path| format!("{}: ", d.display()));
        let message = format!("tuna-shim: {place}{e}");
        if !announced {
            let _ = say(&conn, &format!("error {message}"));
        }
        if let Some(d) = &dir {
            log(d, &message);
        }
    }
}

fn run(
    conn: &UnixStream,
    me: ProcId,
    signals: &Signals,
    (journals, idle): (&mut Journals, &mut Idle<'_>),
    dir: &mut Option<PathBuf>,
    announced: &mut bool,
) -> io::Result<()> {
    // Before the claim: a launcher that died mid-write leaves the attempt unclaimed.
    let spec = LaunchSpec::read_from(conn)?;
    let attempt = spec.job.attempt_dir.clone();
    *dir = Some(attempt.clone());
    let (writer, index) = journals.get(&journal::path_for(&attempt))?;
    match writer.claim(index, &attempt, me)? {
        Claimed::Already(owner) => {
            let _ = say(conn, &format!("taken {}", to_json(&owner)?));
            *announced = true;
        }
        Claimed::Now => {
            let _ = say(conn, &format!("claimed {}", to_json(&me)?));
            *announced = true;
            // Every process sees the claim once it is appended, which is what keeps a command
            // from running twice after a kill. It goes to disk once the script has run for a
            // while: a step of a few milliseconds costs no sync, and a power loss in those
            // first milliseconds may run it again on resume, as it may any step whose
            // store records had not reached the disk yet.
            let record = super::attempt::supervise(&attempt, &spec, signals, || {
                if let Err(e) = writer.sync() {
                    log(&attempt, &format!("tuna-shim: syncing the journal: {e}"));
                }
            });
            let line = format!("exited {}", to_json(&record)?);
            writer.append(&Entry::Exit { attempt, record })?;
            idle.say();
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
