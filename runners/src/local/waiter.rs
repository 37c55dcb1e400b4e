//! A waiter: the process the home's supervisor forks for one launch. It owns one attempt from
//! its claim to its exit record.
//!
//! It blocks its signals first, leaves the supervisor's session, reads the launch spec from its
//! connection, claims the attempt exclusively (so a second launch of the same attempt never
//! runs the script again), says `claimed` or `taken` on the connection and never writes there
//! again (the launcher may be dead by then), then runs the script (see [`super::attempt`]).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::layout;
use super::proc_id::ProcId;
use super::signals::Signals;
use super::spec::LaunchSpec;

/// Runs the launch that arrives on the connection `fd`; the process exit code.
pub(crate) fn main(fd: RawFd) -> i32 {
    // SAFETY: the supervisor hands over an open connection that nothing else in this process
    // owns.
    let conn = unsafe { UnixStream::from_raw_fd(fd) };
    let mut announced = false;
    let mut dir = None;
    match run(&conn, &mut dir, &mut announced) {
        Ok(()) => 0,
        Err(e) => {
            let place = dir
                .as_deref()
                .map_or(String::new(), |d: &Path| format!("{}: ", d.display()));
            let message = format!("tuna-shim: {place}{e}");
            if !announced {
                announce(&conn, &format!("error {message}"));
            }
            if let Some(d) = &dir {
                log(d, &message);
            }
            1
        }
    }
}

fn run(
    conn: &UnixStream,
    dir: &mut Option<std::path::PathBuf>,
    announced: &mut bool,
) -> io::Result<()> {
    let signals = Signals::block()?;
    // Leave the supervisor's session, so that a kill of its group does not reach the job.
    // SAFETY: setsid has no preconditions; a forked child leads no group.
    unsafe { libc::setsid() };
    // Before the claim: a launcher that died mid-write leaves the attempt unclaimed.
    let spec = LaunchSpec::read_from(conn)?;
    let attempt = spec.job.attempt_dir.clone();
    *dir = Some(attempt.clone());
    let me = ProcId::current()?;
    let claim = serde_json::to_string(&me).map_err(io::Error::other)?;
    if layout::create_exclusive(&attempt, layout::CLAIM, claim.as_bytes())? {
        announce(conn, &format!("claimed {claim}"));
        *announced = true;
        super::attempt::supervise(&attempt, &spec, &signals).write(&attempt)
    } else {
        let owner = layout::read_settled(&attempt, layout::CLAIM)?.unwrap_or_default();
        announce(
            conn,
            &format!("taken {}", String::from_utf8_lossy(&owner).trim()),
        );
        *announced = true;
        Ok(())
    }
}

/// Appends `message` to the attempt's shim.log (created only now: most waiters never need it).
fn log(dir: &Path, message: &str) {
    if let Ok(mut file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(layout::SHIM_LOG))
    {
        let _ = writeln!(file, "{message}");
    }
}

/// Writes the one line the launcher waits for and ends our side of the connection.
fn announce(conn: &UnixStream, line: &str) {
    let mut out: &UnixStream = conn;
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    let _ = conn.shutdown(std::net::Shutdown::Both);
}
