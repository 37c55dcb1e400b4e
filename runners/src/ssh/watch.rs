//! Watching a remote attempt: poll its state through the wrapper, copy its logs as they grow,
//! and once it ended, bring back its outputs and say how it ended. Works the same for a job
//! this process launched and for one found in the store after a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use super::conn::{Conn, OpError};
use super::fetch;
use super::handle::SshHandle;
use super::host::{Host, HostError};
use super::logs;
use super::quote::sh_quote;
use crate::local::ExitRecord;
use crate::{Outcome, RunnerError};

/// What one look at the attempt found.
#[derive(Debug, PartialEq)]
enum State {
    Running,
    /// Its `exit.json`.
    Exited(String),
    /// The supervisor is gone without an exit record.
    Dead,
    /// No wrapper has claimed the attempt (yet).
    Unclaimed,
}

fn poll(conn: &mut Conn, dir: &str, local: &Path) -> Result<State, OpError> {
    let out = conn.exec(&format!(
        "sh {} poll {}",
        sh_quote(&conn.wrapper),
        sh_quote(dir)
    ))?;
    let mut lines = out.stdout.splitn(3, '\n');
    let word = lines.next().unwrap_or("").trim().to_owned();
    let sizes: Vec<u64> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let rest = lines.next().unwrap_or("").trim().to_owned();
    if sizes.len() != 2 {
        return Err(OpError::Fatal(format!(
            "the wrapper's answer about {dir} makes no sense: {:?} {}",
            out.stdout,
            out.stderr.trim()
        )));
    }
    logs::pull(conn, dir, local, "stdout.log", sizes[0])?;
    logs::pull(conn, dir, local, "stderr.log", sizes[1])?;
    Ok(match word.as_str() {
        "exit" => State::Exited(rest),
        "running" => State::Running,
        "dead" => State::Dead,
        _ => State::Unclaimed,
    })
}

/// How long an attempt may stay unclaimed before it counts as never started.
const UNCLAIMED_LIMIT: Duration = Duration::from_secs(30);

/// Waits for the attempt named by `handle` to end.
pub(crate) fn watch(host: &Host, handle: &SshHandle, local: &Path) -> Result<Outcome, RunnerError> {
    std::fs::create_dir_all(local)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    let mut dead_seen = false;
    loop {
        let state = match host.retrying(|c| poll(c, &handle.dir, local)) {
            Ok(s) => s,
            Err(HostError::Down(reason)) => return Ok(Outcome::Lost { reason }),
            Err(e) => return Err(RunnerError::Other(e.to_string())),
        };
        match state {
            State::Exited(json) => return finish(host, handle, local, &json),
            // The exit record may land between the liveness check and the next look.
            State::Dead if dead_seen => {
                return Ok(Outcome::Lost {
                    reason: format!(
                        "the wrapper (pid {}) on {} ended without recording how the job ended \
                         (was the host restarted?); see {}/wrap.log there",
                        handle.supervisor, handle.host, handle.dir
                    ),
                });
            }
            State::Dead => dead_seen = true,
            State::Unclaimed if started.elapsed() > UNCLAIMED_LIMIT => {
                return Ok(Outcome::Lost {
                    reason: format!("the job in {} on {} never started", handle.dir, handle.host),
                });
            }
            State::Running | State::Unclaimed => {}
        }
        std::thread::sleep(pause);
        pause = (pause * 3 / 2).min(host.cfg.poll_max);
    }
}

fn finish(
    host: &Host,
    handle: &SshHandle,
    local: &Path,
    json: &str,
) -> Result<Outcome, RunnerError> {
    let record: ExitRecord = serde_json::from_str(json).map_err(|e| {
        RunnerError::Other(format!(
            "{}/exit.json on {} is not an exit record ({e}): {json}",
            handle.dir, handle.host
        ))
    })?;
    if record.outcome.success() {
        match host.retrying(|c| fetch::fetch_outputs(c, &handle.dir, local, &handle.outputs)) {
            Ok(_) => {}
            Err(HostError::Down(reason)) => {
                return Ok(Outcome::Lost {
                    reason: format!("the job ended but its outputs could not be fetched: {reason}"),
                });
            }
            Err(e) => return Err(RunnerError::Other(e.to_string())),
        }
    }
    std::fs::write(local.join("exit.json"), json)?;
    Ok(record.outcome)
}
