//! The `Runner` trait and the durable names of launched jobs.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Job;

/// A launched job, named durably. The orchestrator stores it before it waits, so that after a
/// crash it can ask the same runner to [`Runner::watch`] the same handle again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Handle {
    /// The runner that launched it.
    pub runner: String,
    /// The attempt folder the job writes its pid, status and logs to.
    pub attempt_dir: PathBuf,
    /// Runner-specific data (a pid, a remote job id, ...).
    pub data: serde_json::Value,
}

/// How a job ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// The script exited; `code` 0 is success.
    Exited { code: i32 },
    /// The script was killed by a signal it did not ask for.
    Signaled { signal: i32 },
    /// The runner killed it at its timeout.
    TimedOut,
    /// Someone asked for it to stop.
    Cancelled,
    /// The runner queued it but found no capacity for it within the job's
    /// `wait_for_capacity`, and gave it up before it started.
    NoCapacity { reason: String },
    /// The runner can no longer say what became of it (the machine went away, the wrapper died).
    Lost { reason: String },
}

impl Outcome {
    pub fn success(&self) -> bool {
        matches!(self, Outcome::Exited { code: 0 })
    }
}

/// What `check` learns about a runner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunnerInfo {
    pub reachable: bool,
    pub detail: String,
    /// Why it is not usable, when it is not.
    #[serde(default)]
    pub problem: Option<CheckProblem>,
    /// The GPUs the runner found on its machine (`nvidia-smi`), where it could look.
    #[serde(default)]
    pub gpus_found: Vec<FoundGpu>,
}

/// What kept `check` from using a runner.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CheckProblem {
    Unreachable,
    AuthFailed,
    HostKeyRefused,
    Broken,
}

/// A GPU a runner found on its machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FoundGpu {
    pub name: String,
    pub memory_mib: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The runner cannot take the job now (no free slot, host down); another may.
    #[error("runner unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

/// Something that runs jobs. `launch` and `watch` are split so that a stored [`Handle`] can be
/// watched again by a later process: `launch` returns as soon as the job is durably started.
#[async_trait]
pub trait Runner: Send + Sync {
    fn name(&self) -> &str;
    /// Reachability and a one-line description.
    async fn check(&self) -> Result<RunnerInfo, RunnerError>;
    /// Starts the job and returns its handle. Launching the same job (same attempt folder)
    /// twice never runs its script twice.
    async fn launch(&self, job: &Job) -> Result<Handle, RunnerError>;
    /// Waits for the job to end, also for a handle from an earlier process.
    async fn watch(&self, handle: &Handle) -> Result<Outcome, RunnerError>;
    /// Stops the job (its whole process group); `watch` then reports `Cancelled`.
    async fn cancel(&self, handle: &Handle) -> Result<(), RunnerError>;
    /// Whether the runner's machines offer GPUs of each type in `kinds`, asked when a run
    /// starts (a cluster that lacks a type runners.yaml declares is found before a step
    /// waits on it). The message names the runner. Runners whose GPUs are only declared say yes.
    async fn check_gpu_types(&self, _kinds: &[String]) -> Result<(), RunnerError> {
        Ok(())
    }
    /// Whether the runner's artifact store can be used (reachable, there, credentials
    /// accepted), asked when a run starts so a bad store is found before anything runs. The
    /// message names the runner and what to fix. Runners without a store of their own say yes.
    async fn check_store(&self) -> Result<(), RunnerError> {
        Ok(())
    }
    /// Where the attempt folder of `(run, step, attempt)` is on the machine the job runs on,
    /// when that is not the orchestrator's machine: paths handed to the job (upstream outputs,
    /// `$TUNA_OUTPUTS`) must name that folder. `None` for runners on this machine.
    fn remote_attempt_dir(&self, _run: &str, _step: &str, _attempt: u32) -> Option<String> {
        None
    }
    /// Whether the runner's machine stopped answering (a down host takes no new jobs). A
    /// runner that is down looks again now and then (without blocking the caller), so a
    /// machine that comes back is used again.
    fn is_down(&self) -> bool {
        false
    }
    /// The content-addressed store on the runner's machine, for runners that keep big
    /// outputs there (see [`KeptOutputs`](crate::KeptOutputs)); `None` for runners on this
    /// machine, whose outputs all go into the orchestrator's store.
    fn blob_store(&self) -> Option<&dyn crate::BlobStore> {
        None
    }
    /// The attempt folders on the runner's machine, for runners whose machine is not the
    /// orchestrator's (garbage collection reaches them through this); `None` for the others.
    fn attempt_folders(&self) -> Option<&dyn crate::AttemptFolders> {
        None
    }
}
