//! [`LocalRunner`]: hands each job to the home's supervisor (one of whose waiters runs it) and
//! learns how it ended: from the waiter, on the launch's connection, or, for a job launched by
//! an earlier orchestrator (or an earlier launch of the same attempt), from the run's journal.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use super::config::LocalConfig;
use super::connect::{self, Answer, Connection};
use super::exit_record::ExitRecord;
use super::journal;
use super::layout;
use super::pidfd::{self, Pidfd};
use super::proc_id::{self, ProcId, ProcStatus};
use super::signals::CANCEL_SIGNAL;
use super::spec::{LaunchSpec, NextLaunch};
use crate::{Handle, Job, Outcome, Runner, RunnerError, RunnerInfo};

/// Runs jobs as processes on this machine.
#[derive(Debug)]
pub struct LocalRunner {
    config: LocalConfig,
    /// The supervisor's folder: the configured one, or a private temporary one.
    supervisor: Supervisor,
    /// The connections of jobs this runner launched and nobody watches yet, by attempt folder.
    connections: Mutex<HashMap<PathBuf, Connection>>,
    /// Connections whose job has ended, each to a waiter kept for this runner's next launch
    /// (at most one per slot: a waiter held here is busy for the supervisor).
    kept: Mutex<Vec<Connection>>,
    /// What this runner has read of each run's journal.
    journals: Arc<Mutex<HashMap<PathBuf, journal::Index>>>,
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
        LocalRunner {
            config,
            supervisor,
            connections: Mutex::default(),
            kept: Mutex::default(),
            journals: Arc::default(),
        }
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

    /// The waiter appends its claim to the run's journal before the script starts.
    fn records_launches(&self) -> bool {
        true
    }

    /// A claim in the run's journal without an exit record.
    async fn launched(
        &self,
        _run: &str,
        _step: &str,
        _attempt: u32,
        attempt_dir: &Path,
    ) -> Result<Option<Handle>, RunnerError> {
        let owner = self
            .read_journal(attempt_dir, |index, dir| {
                index.claim(dir).filter(|_| index.exit(dir).is_none())
            })
            .await?;
        owner.map(|id| self.handle(attempt_dir, id)).transpose()
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
        let kill_grace_ms = self.config.kill_grace.as_millis() as u64;
        if job.workdir.is_none() {
            fs::create_dir_all(job.cwd())?;
        }
        let answer = match self.launch_on_kept(job, kill_grace_ms).await? {
            Some(answer) => answer,
            None => {
                let spec = LaunchSpec {
                    job: job.clone(),
                    kill_grace_ms,
                    base_env: self.config.base_env.clone(),
                    same_env: false,
                };
                let dir = self.supervisor_dir()?;
                // Most other launches find the supervisor listening: they need no thread of
                // their own.
                match connect::try_launch(&dir, &job.attempt_dir, &spec.to_bytes()?).await {
                    Ok(Some(answer)) => answer,
                    Err(e) => return Err(with_waiter_log(&job.attempt_dir, e)),
                    Ok(None) => {
                        let shim = self.config.shim.clone();
                        tokio::task::spawn_blocking(move || start(&dir, &shim, &spec))
                            .await
                            .map_err(join_error)??
                    }
                }
            }
        };
        let id = match answer {
            Answer::Claimed(id, connection) => {
                let mut connections = self.connections.lock().expect("not poisoned");
                connections.insert(job.attempt_dir.clone(), connection);
                id
            }
            Answer::Taken(id) => id,
        };
        self.handle(&job.attempt_dir, id)
    }

    async fn watch(&self, handle: &Handle) -> Result<Outcome, RunnerError> {
        let id = proc_id(handle)?;
        let dir = handle.attempt_dir.clone();
        let connection = self.connections.lock().expect("not poisoned").remove(&dir);
        if let Some(connection) = connection
            && let Some((record, connection)) = exited(connection).await
        {
            let mut kept = self.kept.lock().expect("not poisoned");
            if kept.len() < self.config.slots.max(1) as usize {
                kept.push(connection);
            }
            return Ok(record.outcome);
        }
        // Launched by someone else, or the connection closed early: the journal tells.
        let mut delay = Duration::from_millis(2);
        loop {
            if let Some(record) = self.journal_exit(&dir).await? {
                return Ok(record.outcome);
            }
            if !id.is_running() {
                // A waiter appends its record before it takes another job or exits.
                return match self.journal_exit(&dir).await? {
                    Some(record) => Ok(record.outcome),
                    None => blocking(move || Ok(lost(&dir, id))).await,
                };
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), RunnerError> {
        let id = proc_id(handle)?;
        let dir = handle.attempt_dir.clone();
        blocking(move || {
            drop(layout::open_log(&dir, layout::CANCEL)?);
            match Pidfd::open(id) {
                Ok(Some(fd)) => fd.signal(CANCEL_SIGNAL),
                Ok(None) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    pidfd::signal_without_pidfd(id, CANCEL_SIGNAL)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }
}

impl LocalRunner {
    /// Launches on a waiter this runner keeps, if one is still there; `None` when there is
    /// none (then the supervisor hands the launch to a waiter). The waiter has this runner's
    /// base environment from the connection's first launch: it does not travel again.
    async fn launch_on_kept(
        &self,
        job: &Job,
        kill_grace_ms: u64,
    ) -> Result<Option<Answer>, RunnerError> {
        let mut bytes = None;
        loop {
            let Some(connection) = self.kept.lock().expect("not poisoned").pop() else {
                return Ok(None);
            };
            if bytes.is_none() {
                let next = NextLaunch {
                    job,
                    kill_grace_ms,
                    same_env: true,
                };
                bytes = Some(next.to_bytes()?);
            }
            let bytes = bytes.as_deref().unwrap_or_default();
            // A waiter that went away (stopped, killed) claimed nothing: try the next one.
            if let Some(answer) = connection
                .launch(&job.attempt_dir, bytes)
                .await
                .map_err(|e| with_waiter_log(&job.attempt_dir, e))?
            {
                return Ok(Some(answer));
            }
        }
    }

    /// The handle of the attempt in `attempt_dir`, run by the waiter `id`.
    fn handle(&self, attempt_dir: &Path, id: ProcId) -> Result<Handle, RunnerError> {
        Handle::new(&self.config.name, attempt_dir, &id)
    }

    /// The exit record of the attempt in `dir`, read from its run's journal.
    async fn journal_exit(&self, dir: &Path) -> Result<Option<ExitRecord>, RunnerError> {
        self.read_journal(dir, |index, dir| index.exit(dir).cloned())
            .await
    }

    /// What `read` finds about the attempt in `dir` in its run's journal, read up to its end
    /// (this runner keeps what it read of each journal).
    async fn read_journal<T: Send + 'static>(
        &self,
        dir: &Path,
        read: fn(&journal::Index, &Path) -> T,
    ) -> Result<T, RunnerError> {
        let journals = self.journals.clone();
        let dir = dir.to_path_buf();
        blocking(move || {
            let path = journal::path_for(&dir);
            let mut journals = journals.lock().expect("not poisoned");
            let index = journals.entry(path.clone()).or_default();
            let torn = index.torn();
            index.refresh(&path)?;
            if index.torn() > torn {
                tracing::warn!(
                    "{}: {} torn record(s) ignored (a writer was killed mid-record)",
                    path.display(),
                    index.torn() - torn
                );
            }
            Ok(read(index, &dir))
        })
        .await
    }
}

/// Reads the `exited RECORD` line the waiter writes on a claimed launch's connection, and
/// hands the connection back for the next launch; `None` when the connection ended without
/// it (the waiter died).
async fn exited(mut connection: Connection) -> Option<(ExitRecord, Connection)> {
    let line = connection.next_line().await.ok()??;
    let record = serde_json::from_slice(line.strip_prefix(b"exited ")?).ok()?;
    Some((record, connection))
}

/// Hands the job to the supervisor, starting one when none listens: how the waiter that owns
/// the attempt (this launch's, or an earlier one's) answered.
fn start(supervisor: &Path, shim: &Path, spec: &LaunchSpec) -> Result<Answer, RunnerError> {
    connect::launch(supervisor, shim, spec).map_err(|e| with_waiter_log(&spec.job.attempt_dir, e))
}

/// A waiter's refusal, with the end of what it logged in the attempt folder `dir`.
fn with_waiter_log(dir: &Path, e: RunnerError) -> RunnerError {
    match e {
        RunnerError::Spawn(e) => RunnerError::Spawn(format!("{e} ({})", waiter_log_tail(dir))),
        e => e,
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
