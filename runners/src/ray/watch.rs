//! Watching an attempt's Ray Job until it ends: its status polled, its log copied as it grows,
//! the step's timeout enforced by stopping the job, a job `PENDING` past `wait_for_capacity`
//! given up, and once it succeeded its outputs brought back (`back.rs` from the shared folder,
//! `fetch.rs` from a bucket). Works the same for a job this process submitted and for one
//! found through a stored handle after a restart.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::back;
use super::exec::ABANDONED;
use super::fetch;
use super::handle::RayHandle;
use super::logs;
use super::runner::{RayRunner, Store, ray_error};
use crate::{Outcome, RunnerError};

/// Waits for the job of `h` to end (the cluster silent for longer than `lost_after`: lost).
pub(crate) async fn watch(
    runner: &RayRunner,
    h: &RayHandle,
    local: &Path,
) -> Result<Outcome, RunnerError> {
    std::fs::create_dir_all(local)?;
    let id = &h.submission_id;
    let mut pause = Duration::from_millis(50);
    let mut failing_since: Option<std::time::Instant> = None;
    let mut timed_out = false;
    let mut said_pending = false;
    loop {
        let info = match runner.client.job(id).await {
            Ok(Some(i)) => {
                failing_since = None;
                i
            }
            Ok(None) => {
                return Ok(Outcome::Lost {
                    reason: format!(
                        "runner `{}`: the Ray cluster no longer knows job {id} (was its head \
                         restarted?)",
                        runner.cfg.name
                    ),
                });
            }
            Err(e)
                if e.unreachable()
                    && failing_since
                        .get_or_insert_with(std::time::Instant::now)
                        .elapsed()
                        < runner.cfg.lost_after =>
            {
                tokio::time::sleep(runner.cfg.poll_max).await;
                continue;
            }
            Err(e) if e.unreachable() => {
                return Ok(Outcome::Lost {
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(ray_error(&runner.cfg.name, e)),
        };
        if let Ok(text) = runner.client.logs(id).await {
            logs::append_new(local, &text)?;
        }
        match info.status.as_str() {
            "SUCCEEDED" => return finish(runner, h, local).await,
            "FAILED" => {
                copy_exit(runner, h, local).await;
                return Ok(match info.driver_exit_code {
                    Some(code) if code != 0 => Outcome::Exited { code },
                    _ => Outcome::Lost {
                        reason: format!(
                            "runner `{}`: Ray job {id} failed: {}",
                            runner.cfg.name,
                            info.message.unwrap_or_default().trim()
                        ),
                    },
                });
            }
            "STOPPED" if timed_out => return Ok(Outcome::TimedOut),
            "STOPPED" => return Ok(Outcome::Cancelled),
            "PENDING" => {
                if !said_pending {
                    said_pending = true;
                    let note = format!("Ray job {id} is waiting for resources (PENDING)");
                    logs::note(local, &note)?;
                }
                if let (Some(limit), Some(start)) = (h.wait_for_capacity_s, info.start_time)
                    && seconds_since(start) > limit
                {
                    return give_up(runner, h, local, limit).await;
                }
            }
            _ => {}
        }
        if let (Some(limit), Some(start), false) = (h.timeout_s, info.start_time, timed_out)
            && seconds_since(start) > limit
        {
            timed_out = true;
            logs::note(
                local,
                &format!("stopping Ray job {id} at its timeout ({limit} s)"),
            )?;
            runner
                .client
                .stop(id)
                .await
                .map_err(|e| ray_error(&runner.cfg.name, e))?;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(runner.cfg.poll_max);
    }
}

/// The job succeeded: its outputs come back from the shared blobs or the bucket (big ones stay
/// in the bucket), its metrics and exit record from the attempt's folder or records.
async fn finish(runner: &RayRunner, h: &RayHandle, local: &Path) -> Result<Outcome, RunnerError> {
    let (dir, local) = (h.dir.clone(), local.to_path_buf());
    let (name, keep_over) = (runner.cfg.name.clone(), runner.keep_over());
    let bucket = runner.bucket_of(h);
    let shared = match &runner.store {
        Store::Shared(s) => Some(s.clone()),
        Store::Bucket(_) => None,
    };
    tokio::task::spawn_blocking(move || match (bucket, shared) {
        (Some(b), _) => fetch::bring_back(&b, &name, keep_over, &local),
        (None, Some(s)) => back::bring_back(&s, Path::new(&dir), &local),
        (None, None) => Err(RunnerError::Protocol(format!(
            "runner `{name}`: the handle of {dir} names no records in the bucket"
        ))),
    })
    .await
    .map_err(|e| RunnerError::Spawn(format!("a blocking task failed: {e}")))?
}

/// The wrapper's exit record of a failed job, if it wrote one.
async fn copy_exit(runner: &RayRunner, h: &RayHandle, local: &Path) {
    let local = local.to_path_buf();
    match runner.bucket_of(h) {
        Some(b) => {
            let _ = tokio::task::spawn_blocking(move || fetch::copy_exit(&b, &local)).await;
        }
        None => back::copy_exit(Path::new(&h.dir), &local),
    }
}

/// The job waited for resources past `wait_for_capacity`: it is stopped, the runner counts as
/// full for a while, and the step fails for capacity (`retry.on: [capacity]` then sends its next
/// attempt to the next `runs-on` alternative).
async fn give_up(
    runner: &RayRunner,
    h: &RayHandle,
    local: &Path,
    limit: f64,
) -> Result<Outcome, RunnerError> {
    let id = &h.submission_id;
    // Ray keeps a PENDING job queued after a stop until its start timeout: should it still
    // start, the wrapper finds this mark and runs nothing.
    match runner.bucket_of(h) {
        Some(b) => tokio::task::spawn_blocking(move || b.put_record(ABANDONED, Vec::new()))
            .await
            .map_err(|e| RunnerError::Spawn(format!("a blocking task failed: {e}")))??,
        None => std::fs::write(Path::new(&h.dir).join(ABANDONED), b"")?,
    }
    runner
        .client
        .stop(id)
        .await
        .map_err(|e| ray_error(&runner.cfg.name, e))?;
    runner.skip_for(super::runner::FULL_FOR);
    let reason = format!(
        "runner `{}`: Ray job {id} waited for resources (PENDING) longer than \
         wait_for_capacity ({limit}s); it was stopped",
        runner.cfg.name
    );
    logs::note(local, &reason)?;
    Ok(Outcome::NoCapacity { reason })
}

/// Seconds from unix milliseconds `ms` to now.
fn seconds_since(ms: u64) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(ms) as f64 / 1000.0
}
