//! [`LocalRunner`]: hands each job to the home's supervisor (which forks a waiter for it) and
//! watches the waiter through the attempt folder, also after the orchestrator restarted.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use async_trait::async_trait;

use super::config::LocalConfig;
use super::connect::{self, Answer};
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
    /// The supervisor's folder: the configured one, or a private temporary one.
    supervisor: Supervisor,
}

/// Where the runner's supervisor lives.
#[derive(Debug)]
enum Supervisor {
    /// The home's (`HOME/supervisor`), shared by every tuna process of the home.
    Home(PathBuf),
    /// A private temporary folder, made at the first launch and removed with the runner (the
    /// supervisor then exits once idle).
    Private(OnceLock<tempfile::TempDir>),
}

impl LocalRunner {
    pub fn new(config: LocalConfig) -> LocalRunner {
        let supervisor = match &config.supervisor_dir {
            Some(dir) => Supervisor::Home(dir.clone()),
            None => Supervisor::Private(OnceLock::new()),
        };
        LocalRunner { config, supervisor }
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    /// The folder of the supervisor this runner's jobs go through.
    fn supervisor_dir(&self) -> io::Result<PathBuf> {
        match &self.supervisor {
            Supervisor::Home(dir) => Ok(dir.clone()),
            Supervisor::Private(once) => {
                if let Some(tmp) = once.get() {
                    return Ok(tmp.path().to_path_buf());
                }
                let tmp = tempfile::Builder::new()
                    .prefix("tuna-supervisor-")
                    .tempdir()?;
                Ok(once.get_or_init(|| tmp).path().to_path_buf())
            }
        }
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
            base_env: self.config.base_env.clone(),
        };
        let shim = self.config.shim.clone();
        let dir = self.supervisor_dir()?;
        let id = tokio::task::spawn_blocking(move || start(&dir, &shim, &spec))
            .await
            .map_err(join_error)??;
        Ok(Handle {
            runner: self.config.name.clone(),
            attempt_dir: job.attempt_dir.clone(),
            data: serde_json::to_value(id).map_err(|e| RunnerError::Protocol(e.to_string()))?,
        })
    }

    async fn watch(&self, handle: &Handle) -> Result<Outcome, RunnerError> {
        let id = proc_id(handle)?;
        let dir = handle.attempt_dir.clone();
        {
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
        blocking(move || match ExitRecord::read(&dir)? {
            Some(record) => Ok(record.outcome),
            None => Ok(lost(&dir, id)),
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

/// Prepares the attempt folder and hands the job to the supervisor. Returns the waiter that
/// owns the attempt (this launch's, or an earlier one's).
fn start(supervisor: &Path, shim: &Path, spec: &LaunchSpec) -> Result<ProcId, RunnerError> {
    let dir = &spec.job.attempt_dir;
    fs::create_dir_all(dir.join(layout::WORK_DIR))?;
    match connect::launch(supervisor, shim, spec) {
        Ok(Answer::Claimed(id) | Answer::Taken(id)) => Ok(id),
        Err(RunnerError::Spawn(e)) => Err(RunnerError::Spawn(format!(
            "{e} ({})",
            waiter_log_tail(dir)
        ))),
        Err(e) => Err(e),
    }
}

/// The outcome of a waiter that ended without writing `exit.json`. Kills the script's group if
/// it outlived the waiter, so that no orphan keeps running.
fn lost(dir: &Path, waiter: ProcId) -> Outcome {
    // The script runs in the waiter's session. Only when the waiter's pid is free (or still
    // its zombie) does that session belong to it; otherwise the pid names someone else.
    let pid_free = match ProcStatus::read(waiter.pid) {
        Ok(None) => true,
        Ok(Some(status)) => status.start_time == waiter.start_time,
        Err(_) => false,
    };
    if pid_free {
        proc_id::signal_session(waiter.pid, libc::SIGKILL);
    }
    Outcome::Lost {
        reason: format!(
            "the step's waiter (pid {}) ended without recording how the job ended: {}",
            waiter.pid,
            waiter_log_tail(dir)
        ),
    }
}

fn waiter_log_tail(dir: &Path) -> String {
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
