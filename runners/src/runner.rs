//! The `Runner` trait and the durable names of launched jobs.

use std::path::{Path, PathBuf};

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

impl Handle {
    /// The handle of the attempt in `attempt_dir` that `runner` launched, with its data.
    pub fn new(
        runner: &str,
        attempt_dir: &Path,
        data: &impl Serialize,
    ) -> Result<Handle, crate::RunnerError> {
        Ok(Handle {
            runner: runner.to_owned(),
            attempt_dir: attempt_dir.to_path_buf(),
            data: serde_json::to_value(data)
                .map_err(|e| crate::RunnerError::Protocol(e.to_string()))?,
        })
    }
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

/// Why a runner could not do what it was asked, by kind, each with a stable code
/// ([`RunnerError::code`]). The message says what failed and, where it is known, on which runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The runner cannot take the job now (no free slot, host down); another may.
    #[error("runner unavailable: {0}")]
    Unavailable(String),
    /// The runner's own settings cannot work (a folder that must be absolute, a bucket URL or
    /// an address that does not parse, a variable name steps may not get).
    #[error("{0}")]
    Config(String),
    /// What the step asks, this runner cannot do (a GPU type its cluster lacks, secrets that
    /// would travel through a bucket).
    #[error("{0}")]
    Refused(String),
    /// A process or task on this machine could not be started or joined (the shim, a
    /// blocking task).
    #[error("{0}")]
    Spawn(String),
    /// The runner's machine or service failed the request (the ssh host, Ray's API, the
    /// bucket or shared folder its artifacts travel through).
    #[error("{message}")]
    Remote { runner: String, message: String },
    /// A record, handle or answer that is not what it should be (an exit record that does not
    /// parse, a handle of another kind of runner, a listing naming a path that is not allowed).
    #[error("{0}")]
    Protocol(String),
}

impl RunnerError {
    /// A failure of runner `runner`'s machine or service.
    pub fn remote(runner: &str, message: impl std::fmt::Display) -> RunnerError {
        RunnerError::Remote {
            runner: runner.to_string(),
            message: message.to_string(),
        }
    }

    /// A stable name for the kind of failure (`tuna::runner::…`), as the engine's errors and
    /// the workflow's diagnostics have theirs.
    pub fn code(&self) -> &'static str {
        match self {
            RunnerError::Io(_) => "tuna::runner::io",
            RunnerError::Unavailable(_) => "tuna::runner::unavailable",
            RunnerError::Config(_) => "tuna::runner::config",
            RunnerError::Refused(_) => "tuna::runner::refused",
            RunnerError::Spawn(_) => "tuna::runner::spawn",
            RunnerError::Remote { .. } => "tuna::runner::remote",
            RunnerError::Protocol(_) => "tuna::runner::protocol",
        }
    }

    /// Whether what the step asks is at fault (exit code 2) rather than tuna's surroundings:
    /// the runner, its machine, its settings or this machine (3).
    pub fn is_input(&self) -> bool {
        matches!(self, RunnerError::Refused(_))
    }
}

/// Something that runs jobs. `launch` and `watch` are split so that a stored [`Handle`] can be
/// watched again by a later process: `launch` returns as soon as the job is durably started.
#[async_trait]
pub trait Runner: Send + Sync {
    fn name(&self) -> &str;
    /// Reachability and a one-line description.
    async fn check(&self) -> Result<RunnerInfo, RunnerError>;
    /// Starts the job and returns its handle. Launching the same job (same attempt folder)
    /// twice never runs its script twice. Makes the job's attempt folder on this machine (with
    /// its `work/`) when it is missing: the orchestrator leaves that to the launch, which runs
    /// off its dispatcher's thread.
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
    /// Whether the runner itself records each launch durably before the script starts, so
    /// that a launch of the same attempt after a crash finds it (and adopts it, never running
    /// the script twice) without the orchestrator's own record of the launch. The orchestrator
    /// need not make its records durable before such a launch: a record lost with a crash is
    /// rebuilt by launching the same attempt again.
    fn records_launches(&self) -> bool {
        false
    }
    /// The handle of attempt `attempt` of `step` in `run` (its folder here: `attempt_dir`) when
    /// the runner's own records say it was launched and has not ended, for a run whose
    /// orchestrator crashed before its record of the launch was durable, so that the attempt
    /// can still be stopped. The local runner reads the run's journal; runners on other
    /// machines ask there (an SSH host: the attempt folder's claim; a Ray cluster: the job of
    /// the attempt's submission id). `None` when nothing runs for that attempt.
    async fn launched(
        &self,
        _run: &str,
        _step: &str,
        _attempt: u32,
        _attempt_dir: &std::path::Path,
    ) -> Result<Option<Handle>, RunnerError> {
        Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_code_and_only_a_refused_request_is_the_input_s_fault() {
        let all = [
            (
                RunnerError::Io(std::io::Error::other("x")),
                "tuna::runner::io",
            ),
            (
                RunnerError::Unavailable("x".into()),
                "tuna::runner::unavailable",
            ),
            (RunnerError::Config("x".into()), "tuna::runner::config"),
            (RunnerError::Refused("x".into()), "tuna::runner::refused"),
            (RunnerError::Spawn("x".into()), "tuna::runner::spawn"),
            (RunnerError::remote("gpu-box", "x"), "tuna::runner::remote"),
            (RunnerError::Protocol("x".into()), "tuna::runner::protocol"),
        ];
        for (e, code) in &all {
            assert_eq!(e.code(), *code);
            assert_eq!(e.is_input(), *code == "tuna::runner::refused", "{code}");
        }
        let remote = RunnerError::remote("gpu-box", "the host said no");
        assert_eq!(remote.to_string(), "the host said no");
        assert!(matches!(remote, RunnerError::Remote { runner, .. } if runner == "gpu-box"));
    }
}
