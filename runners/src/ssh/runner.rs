//! [`SshRunner`]: launches each job detached under the remote wrapper and watches it through
//! the remote attempt folder, also after the orchestrator restarted.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;

use super::check;
use super::config::SshConfig;
use super::conn::{Conn, OpError};
use super::handle::SshHandle;
use super::host::{Host, HostError};
use super::mask::LogMasks;
use super::poll::{PollBoard, State};
use super::stage::{self, StageReport};
use super::store::HostStore;
use super::watch;
use crate::shell::quote;
use crate::{BlobStore, Handle, Job, Outcome, Runner, RunnerError, RunnerInfo};

/// Runs jobs on one host over SSH.
pub struct SshRunner {
    host: Arc<Host>,
    board: Arc<PollBoard>,
    /// Secret values of the attempts launched here, masked in their logs.
    masks: Arc<LogMasks>,
    store: HostStore,
}

impl std::fmt::Debug for SshRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRunner")
            .field("config", &self.host.cfg)
            .finish()
    }
}

impl SshRunner {
    /// A runner for the host in `config`. Connects on first use. `workdir` must be absolute.
    pub fn new(config: SshConfig) -> Result<SshRunner, RunnerError> {
        if !config.workdir.starts_with('/') {
            return Err(RunnerError::Config(format!(
                "runner `{}`: workdir `{}` must be an absolute path on the host",
                config.name, config.workdir
            )));
        }
        let host = Arc::new(Host::new(config));
        Ok(SshRunner {
            store: HostStore { host: host.clone() },
            host,
            board: Arc::new(PollBoard::default()),
            masks: Arc::new(LogMasks::default()),
        })
    }

    pub fn config(&self) -> &SshConfig {
        &self.host.cfg
    }

    /// The remote attempt folder of `(run, step, attempt)`.
    pub fn attempt_dir(&self, run: &str, step: &str, attempt: u32) -> String {
        format!("{}/runs/{run}/{step}/{attempt}", self.host.cfg.workdir)
    }

    /// Launches `job` and also says what staging moved (for tests and benchmarks).
    pub async fn launch_reporting(&self, job: &Job) -> Result<(Handle, StageReport), RunnerError> {
        let host = self.host.clone();
        let job = job.clone();
        let dir = self.attempt_dir(&job.run_id, &job.step, job.attempt);
        self.masks.register(&dir, job.secret_values());
        blocking(move || launch(&host, &job, &dir)).await
    }
}

/// Launch on a blocking thread: prepare the remote attempt folder, stage, start the wrapper.
fn launch(host: &Host, job: &Job, dir: &str) -> Result<(Handle, StageReport), RunnerError> {
    std::fs::create_dir_all(job.attempt_dir.join("work"))?;
    let (blobs, dirs) = stage::plan(&job.stage)
        .map_err(|e| RunnerError::Protocol(format!("staging the inputs of `{}`: {e}", job.step)))?;
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let env = env_file(job, dir, host.cfg.tuna.as_deref().unwrap_or("tuna"))?;
    let grace = host.cfg.kill_grace.as_secs_f64().to_string();
    let timeout = job.timeout.map(|t| t.as_secs_f64().to_string());
    // A job with secrets never puts its env on a command line (other users of the host can
    // read those): its files go over SFTP, the env file 0600.
    let prepare = prepare_command(dir, &job.script, &env, &grace, timeout.as_deref())
        .filter(|_| job.secrets.is_empty());
    let staged = !blobs.is_empty() || !dirs.is_empty();
    let result = host.retrying(|conn| {
        let mut report = StageReport::default();
        match &prepare {
            // One round trip: write the attempt's files unless it is claimed, and start it.
            Some(prepare) if !staged => {
                let answer = start(conn, dir, &nonce, prepare)?;
                return Ok((answer, report));
            }
            Some(prepare) => {
                let out = conn.exec(&format!("{prepare} && cat claim 2>/dev/null; true"))?;
                if out.stdout.trim().is_empty() {
                    report = stage::stage(conn, &host.cfg.workdir, dir, &blobs, &dirs)?;
                }
            }
            // Too big for a command line, or secret: the files go over SFTP.
            None => {
                let claim = conn.exec(&format!(
                    "mkdir -p {d}/work && cat {d}/claim 2>/dev/null; true",
                    d = quote(dir)
                ))?;
                if claim.stdout.trim().is_empty() {
                    conn.write_file(&format!("{dir}/script"), job.script.as_bytes(), 0o644)?;
                    conn.write_file(&format!("{dir}/env"), env.as_bytes(), 0o600)?;
                    conn.write_file(&format!("{dir}/grace"), grace.as_bytes(), 0o644)?;
                    if let Some(t) = &timeout {
                        conn.write_file(&format!("{dir}/timeout"), t.as_bytes(), 0o644)?;
                    }
                    report = stage::stage(conn, &host.cfg.workdir, dir, &blobs, &dirs)?;
                }
            }
        }
        let answer = start(conn, dir, &nonce, "true")?;
        Ok((answer, report))
    });
    let (supervisor, report) = match result {
        Ok(v) => v,
        Err(HostError::Down(reason)) => return Err(RunnerError::Unavailable(reason)),
        Err(e) => return Err(RunnerError::remote(&host.cfg.name, e)),
    };
    let data = SshHandle {
        host: host.cfg.host_entry(),
        dir: dir.to_owned(),
        supervisor,
        outputs: job.outputs.clone(),
    };
    Ok((
        Handle::new(&host.cfg.name, &job.attempt_dir, &data)?,
        report,
    ))
}

/// The longest command line the runner sends (one argument of `sh -c` may hold 128 KiB).
const MAX_COMMAND: usize = 100 * 1024;

/// A shell command that makes the attempt folder and, unless the attempt is claimed, writes its
/// files (each to a temp name, then renamed: a running script's file is never rewritten in
/// place). `None` when the files are too big for one command line.
fn prepare_command(
    dir: &str,
    script: &str,
    env: &str,
    grace: &str,
    timeout: Option<&str>,
) -> Option<String> {
    let d = quote(dir);
    let put = |name: &str, text: &str| {
        format!(
            "printf '%s' {} > {name}.$$ && mv -f {name}.$$ {name}",
            quote(text)
        )
    };
    let mut files = vec![
        put("script", script),
        format!("(umask 077 && {})", put("env", env)),
        put("grace", grace),
    ];
    if let Some(t) = timeout {
        files.push(put("timeout", t));
    }
    let command = format!(
        "mkdir -p {d}/work && cd {d} && if [ ! -e claim ]; then {}; fi",
        files.join(" && ")
    );
    (command.len() <= MAX_COMMAND).then_some(command)
}

/// Runs `prepare`, then `wrap launch`; returns the supervisor's pid (ours, or the one that
/// claimed first).
fn start(conn: &mut Conn, dir: &str, nonce: &str, prepare: &str) -> Result<u32, OpError> {
    let out = conn.exec(&format!(
        "{prepare} && sh {} launch {} {}",
        quote(&conn.wrapper),
        quote(dir),
        quote(nonce)
    ))?;
    let line = out.stdout.trim();
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|p| p.parse().ok())) {
        (Some("claimed" | "taken"), Some(pid)) => Ok(pid),
        _ => Err(OpError::Fatal(format!(
            "the wrapper did not start the job in {dir}: {line} {}",
            out.stderr.trim()
        ))),
    }
}

/// `export NAME='value'` lines: the job's env with the paths that name the remote folder, and
/// `TUNA_EXE` naming the host's `tuna`.
fn env_file(job: &Job, dir: &str, tuna: &str) -> Result<String, RunnerError> {
    let mut env = job.env.clone();
    env.insert("TUNA_EXE".into(), tuna.to_owned());
    env.insert("TUNA_ATTEMPT_DIR".into(), dir.to_owned());
    env.insert("TUNA_OUTPUTS".into(), format!("{dir}/work"));
    env.insert("TUNA_METRICS".into(), format!("{dir}/metrics.json"));
    // Written on the host and not fetched: progress shows for local steps only.
    env.insert("TUNA_PROGRESS".into(), format!("{dir}/progress.json"));
    env.insert(
        "CUDA_VISIBLE_DEVICES".into(),
        job.resources.cuda_visible_devices(),
    );
    crate::step_env::check_names(&env, &job.step)?;
    let mut text = String::new();
    for (k, v) in &env {
        let _ = writeln!(text, "export {k}={}", quote(v));
    }
    Ok(text)
}

fn ssh_handle(handle: &Handle) -> Result<SshHandle, RunnerError> {
    serde_json::from_value(handle.data.clone()).map_err(|e| {
        RunnerError::Protocol(format!(
            "not a handle of an ssh runner ({e}): {}",
            handle.data
        ))
    })
}

#[async_trait]
impl Runner for SshRunner {
    fn name(&self) -> &str {
        &self.host.cfg.name
    }

    async fn check(&self) -> Result<RunnerInfo, RunnerError> {
        let cfg = self.host.cfg.clone();
        blocking(move || Ok(check::check(&cfg))).await
    }

    async fn launch(&self, job: &Job) -> Result<Handle, RunnerError> {
        Ok(self.launch_reporting(job).await?.0)
    }

    async fn watch(&self, handle: &Handle) -> Result<Outcome, RunnerError> {
        let data = ssh_handle(handle)?;
        let (host, board, masks) = (self.host.clone(), self.board.clone(), self.masks.clone());
        let local = handle.attempt_dir.clone();
        blocking(move || watch::watch(&host, &board, &masks, &data, &local)).await
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), RunnerError> {
        let data = ssh_handle(handle)?;
        let host = self.host.clone();
        blocking(move || {
            host.retrying(|conn| {
                let out = conn.exec(&format!(
                    "sh {} cancel {}",
                    quote(&conn.wrapper),
                    quote(&data.dir)
                ))?;
                if out.stdout.trim() == "ok" {
                    Ok(())
                } else {
                    Err(OpError::Fatal(format!(
                        "cancelling {} on {}: {} {}",
                        data.dir,
                        data.host,
                        out.stdout.trim(),
                        out.stderr.trim()
                    )))
                }
            })
            .map_err(|e| RunnerError::remote(&host.cfg.name, e))
        })
        .await
    }

    /// The attempt folder's claim on the host, while its supervisor runs.
    async fn launched(
        &self,
        run: &str,
        step: &str,
        attempt: u32,
        attempt_dir: &std::path::Path,
    ) -> Result<Option<Handle>, RunnerError> {
        let dir = self.attempt_dir(run, step, attempt);
        let (host, board) = (self.host.clone(), self.board.clone());
        let local = attempt_dir.to_path_buf();
        blocking(move || {
            let supervisor = host
                .retrying(|conn| {
                    if board.poll(conn, &dir)?.state != State::Running {
                        return Ok(None);
                    }
                    // The claim: `PID NONCE`.
                    let claim = conn.exec(&format!("cat {}/claim", quote(&dir)))?;
                    Ok(claim
                        .stdout
                        .split_whitespace()
                        .next()
                        .and_then(|p| p.parse().ok()))
                })
                .map_err(|e| RunnerError::remote(&host.cfg.name, e))?;
            let Some(supervisor) = supervisor else {
                return Ok(None);
            };
            let data = SshHandle {
                host: host.cfg.host_entry(),
                dir,
                supervisor,
                outputs: Vec::new(),
            };
            Handle::new(&host.cfg.name, &local, &data).map(Some)
        })
        .await
    }

    fn remote_attempt_dir(&self, run: &str, step: &str, attempt: u32) -> Option<String> {
        Some(self.attempt_dir(run, step, attempt))
    }

    fn is_down(&self) -> bool {
        if self.host.probe_due() {
            let host = self.host.clone();
            std::thread::spawn(move || host.probe());
        }
        self.host.is_down()
    }

    fn blob_store(&self) -> Option<&dyn BlobStore> {
        Some(&self.store)
    }

    fn attempt_folders(&self) -> Option<&dyn crate::AttemptFolders> {
        Some(&self.store)
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RunnerError> + Send + 'static,
) -> Result<T, RunnerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RunnerError::Spawn(format!("a blocking task failed: {e}")))?
}
