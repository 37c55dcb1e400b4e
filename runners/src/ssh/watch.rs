//! Watching a remote attempt: poll its state through the wrapper, copy its logs as they grow,
//! and once it ended, settle its outputs (kept on the host or brought back) and say how it
//! ended. Works the same for a job
//! this process launched and for one found in the store after a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use super::conn::{Conn, OpError};
use super::handle::SshHandle;
use super::host::{Host, HostError};
use super::keep;
use super::logs;
use super::mask::LogMasks;
use super::poll::{PollBoard, State};
use crate::local::ExitRecord;
use crate::{Outcome, RunnerError};

/// One look at the attempt (batched with other watchers of the host), and its new log lines.
fn look(
    conn: &mut Conn,
    board: &PollBoard,
    masks: &LogMasks,
    dir: &str,
    local: &Path,
) -> Result<State, OpError> {
    let polled = board.poll(conn, dir)?;
    logs::pull(conn, masks, dir, local, "stdout.log", polled.stdout_len)?;
    logs::pull(conn, masks, dir, local, "stderr.log", polled.stderr_len)?;
    Ok(polled.state)
}

/// How long an attempt may stay unclaimed before it counts as never started.
const UNCLAIMED_LIMIT: Duration = Duration::from_secs(30);

/// Waits for the attempt named by `handle` to end; once it did, the logs' masks give up what
/// they held back.
pub(crate) fn watch(
    host: &Host,
    board: &PollBoard,
    masks: &LogMasks,
    handle: &SshHandle,
    local: &Path,
) -> Result<Outcome, RunnerError> {
    let outcome = wait(host, board, masks, handle, local)?;
    logs::finish(masks, &handle.dir, local).map_err(|e| match e {
        OpError::Conn(m) | OpError::Fatal(m) => RunnerError::remote(&host.cfg.name, m),
    })?;
    Ok(outcome)
}

fn wait(
    host: &Host,
    board: &PollBoard,
    masks: &LogMasks,
    handle: &SshHandle,
    local: &Path,
) -> Result<Outcome, RunnerError> {
    std::fs::create_dir_all(local)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    let mut dead_seen = false;
    loop {
        board.want(&handle.dir);
        let state = match host.retrying(|c| look(c, board, masks, &handle.dir, local)) {
            Ok(s) => s,
            Err(HostError::Down(reason)) => return Ok(Outcome::Lost { reason }),
            Err(e) => return Err(RunnerError::remote(&host.cfg.name, e)),
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
            State::Missing => {
                return Ok(Outcome::Lost {
                    reason: format!(
                        "the attempt folder {} is gone from {}",
                        handle.dir, handle.host
                    ),
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
        RunnerError::Protocol(format!(
            "{}/exit.json on {} is not an exit record ({e}): {json}",
            handle.dir, handle.host
        ))
    })?;
    if record.outcome.success() {
        match host.retrying(|c| keep::settle(host, c, &handle.dir, local, &handle.outputs)) {
            Ok(_) => {}
            Err(HostError::Down(reason)) => {
                return Ok(Outcome::Lost {
                    reason: format!("the job ended but its outputs could not be fetched: {reason}"),
                });
            }
            Err(e) => return Err(RunnerError::remote(&host.cfg.name, e)),
        }
    }
    std::fs::write(local.join("exit.json"), json)?;
    Ok(record.outcome)
}
