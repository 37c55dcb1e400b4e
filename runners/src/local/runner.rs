//! [`LocalRunner`]: launches each job under a detached `tuna-shim` and watches it through the
//! attempt folder, also after the orchestrator restarted.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use async_trait::async_trait;

use super::config::LocalConfig;
use super::exit_record::ExitRecord;
use super::layout;
use super::pidfd::{self, Pidfd};
use super::proc_id::{self, ProcId, ProcStatus};
use super::spec::LaunchSpec;
use crate::{Handle, Job, Outcome, Runner, RunnerError, RunnerInfo};

/// Runs jobs as processes on this machine.
#[derive(Debug)]
pub struct LocalRunner {
    config: LocalConfig,
    /// Shims this process started, kept so they can be reaped once they end.
    shims: Mutex<HashMap<u32, Child>>,
}

impl LocalRunner {
    pub fn new(config: LocalConfig) -> LocalRunner {
        LocalRunner {
            config,
            shims: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    fn shims(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Child>> {
        self.shims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Runner for LocalRunner {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn check(&self) -> Result<RunnerInfo, RunnerError> {
        let shim = &self.config.shim;
        let executable =
            fs::metadata(shim).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        let detail = if executable {
            let gpus: Vec<String> = self
                .config
                .gpus
                .iter()
                .map(|g| format!("{}:{}", g.kind, g.index))
                .collect();
            format!(
                "this machine: {} slots, GPUs [{}], shim {}",
                self.config.slots,
                gpus.join(", "),
                shim.display()
            )
        } else {
            format!(
                "the shim {} is missing or not executable; reinstall tuna",
                shim.display()
            )
        };
        Ok(RunnerInfo {
            reachable: executable,
            detail,
            problem: (!executable).then_some(crate::CheckProblem::Broken),
            gpus_found: Vec::new(),
        })
    }

    async fn launch(&self, job: &Job) -> Result<Handle, RunnerError> {
        let spec = LaunchSpec {
            job: job.clone(),
            kill_grace_ms: self.config.kill_grace.as_millis() as u64,
        };
        let shim = self.config.shim.clone();
        let base_env = self.config.base_env.clone();
        let (id, child) = tokio::task::spawn_blocking(move || start_shim(&shim, &base_env, &spec))
            .await
            .map_err(join_error)??;
        if let Some(child) = child {
            self.shims().insert(id.pid, child);
        }
        Ok(Handle {
            runner: self.config.name.clone(),
            attempt_dir: job.attempt_dir.clone(),
            data: serde_json::to_value(id).map_err(|e| RunnerError::Protocol(e.to_string()))?,
        })
    }

    async fn watch(&self, handle: &Handle) -> Result<Outcome, RunnerError> {
        let id = proc_id(handle)?;
        let dir = handle.attempt_dir.clone();
        let own = self.shims().remove(&id.pid);
        if own.is_none() {
            let dir = dir.clone();
            if let Some(record) = blocking(move || ExitRecord::read(&dir)).await? {
                return Ok(record.outcome);
            }
        }
        match Pidfd::open(id) {
            Ok(Some(fd)) => fd.exited().await?,
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::Unsupported => pidfd::poll_until_gone(id).await,
            Err(e) => return Err(e.into()),
        }
        blocking(move || {
            if let Some(mut child) = own {
                // It has ended: this only reaps it.
                let _ = child.wait();
            }
            match ExitRecord::read(&dir)? {
                Some(record) => Ok(record.outcome),
                None => Ok(lost(&dir, id)),
            }
        })
        .await
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), RunnerError> {
        let id = proc_id(handle)?;
        let dir = handle.attempt_dir.clone();
        blocking(move || {
            File::create(dir.join(layout::CANCEL))?;
            match Pidfd::open(id) {
                Ok(Some(fd)) => fd.signal(libc::SIGTERM),
                Ok(None) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    pidfd::signal_without_pidfd(id, libc::SIGTERM)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }
}

/// Prepares the attempt folder, starts the shim and reads its one line. Returns the shim that
/// owns the attempt, and the child process when it is the one just started.
fn start_shim(
    shim: &Path,
    base_env: &BTreeMap<String, String>,
    spec: &LaunchSpec,
) -> Result<(ProcId, Option<Child>), RunnerError> {
    let dir = &spec.job.attempt_dir;
    fs::create_dir_all(dir.join(layout::WORK_DIR))?;
    let mut child = Command::new(shim)
        .arg(dir)
        .env_clear()
        .envs(base_env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // The shim says what went wrong on stdout before it claims, and in shim.log after.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            RunnerError::Spawn(format!("cannot start the shim {}: {e}", shim.display()))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A shim that finds the attempt taken may stop reading early: that is not an error.
        let _ = stdin.write_all(&spec.to_bytes()?);
    }
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut line)?;
    }
    let (word, claim) = line
        .trim_end()
        .split_once(' ')
        .unwrap_or((line.trim_end(), ""));
    let owner = serde_json::from_str::<ProcId>(claim);
    match (word, owner) {
        ("claimed", Ok(id)) => Ok((id, Some(child))),
        ("taken", Ok(id)) => {
            let _ = child.wait();
            Ok((id, None))
        }
        ("error", _) => {
            let _ = child.wait();
            Err(RunnerError::Spawn(claim.to_owned()))
        }
        _ => {
            let _ = child.wait();
            Err(RunnerError::Spawn(format!(
                "the shim {} did not take the attempt {} (it said {:?}): {}",
                shim.display(),
                dir.display(),
                line.trim_end(),
                shim_log_tail(dir)
            )))
        }
    }
}

/// The outcome of a shim that ended without writing `exit.json`. Kills the script's group if
/// it outlived the shim, so that no orphan keeps running.
fn lost(dir: &Path, shim: ProcId) -> Outcome {
    // The script runs in the shim's session. Only when the shim's pid is free (or still the
    // shim's zombie) does that session belong to it; otherwise the pid names someone else.
    let shim_pid_free = match ProcStatus::read(shim.pid) {
        Ok(None) => true,
        Ok(Some(status)) => status.start_time == shim.start_time,
        Err(_) => false,
    };
    if shim_pid_free {
        proc_id::signal_session(shim.pid, libc::SIGKILL);
    }
    Outcome::Lost {
        reason: format!(
            "the shim (pid {}) ended without recording how the job ended: {}",
            shim.pid,
            shim_log_tail(dir)
        ),
    }
}

fn shim_log_tail(dir: &Path) -> String {
    let path: PathBuf = dir.join(layout::SHIM_LOG);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            let lines: Vec<&str> = text.trim_end().lines().collect();
            lines[lines.len().saturating_sub(5)..].join("; ")
        }
        _ => format!("{} says nothing more", path.display()),
    }
}

fn proc_id(handle: &Handle) -> Result<ProcId, RunnerError> {
    serde_json::from_value(handle.data.clone()).map_err(|e| {
        RunnerError::Protocol(format!(
            "not a handle of the local runner ({e}): {}",
            handle.data
        ))
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, RunnerError> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(join_error)??)
}

fn join_error(e: tokio::task::JoinError) -> RunnerError {
    RunnerError::Spawn(format!("a blocking task failed: {e}"))
}
