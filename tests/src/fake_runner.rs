//! A scripted runner for the dispatcher's tests: each (step, attempt) gets an outcome written
//! beforehand (pass, exit with a code, unavailable at launch, runner lost, hang until cancelled
//! or released), and every launch, start, watch and cancel is recorded. No process runs.
//!
//! Like the real runners, a launch of an attempt folder it knows already attaches to that job
//! (adoption after a restart) instead of starting it again, and a runner that answered
//! `Unavailable` counts as down afterwards, so placement sends the next attempt elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tuna_runners::{Handle, Job, Outcome, Runner, RunnerError, RunnerInfo};

/// What one attempt of a step does on the fake runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// Exits 0 at once, with its declared outputs written.
    Pass,
    /// Exits with this code at once.
    Exit(i32),
    /// The launch fails with [`RunnerError::Unavailable`]; the runner is down from then on.
    Unavailable,
    /// The runner loses the job ([`Outcome::Lost`]).
    Lost,
    /// Runs until cancelled (or released by [`FakeRunner::release`]).
    Hang,
}

/// What kind of call the runner saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `launch` was called.
    Launch,
    /// A launch started a new job (not an attach to a known one).
    Start,
    Watch,
    Cancel,
}

/// One call the runner saw, with the step and attempt it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub kind: Kind,
    pub step: String,
    pub attempt: u32,
}

impl Call {
    pub fn new(kind: Kind, step: &str, attempt: u32) -> Call {
        Call {
            kind,
            step: step.to_string(),
            attempt,
        }
    }
}

struct FakeJob {
    step: String,
    attempt: u32,
    handle: Handle,
    end: watch::Sender<Option<Outcome>>,
}

/// The fake runner. Steps without a script pass.
pub struct FakeRunner {
    name: String,
    scripts: Mutex<HashMap<(String, u32), Script>>,
    jobs: Mutex<HashMap<PathBuf, FakeJob>>,
    calls: Mutex<Vec<Call>>,
    /// Bumped on every recorded call, so tests wait on conditions instead of sleeping.
    changed: watch::Sender<u64>,
    down: AtomicBool,
}

impl FakeRunner {
    pub fn new(name: &str) -> FakeRunner {
        FakeRunner {
            name: name.to_string(),
            scripts: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
            down: AtomicBool::new(false),
        }
    }

    /// Sets what `attempt` (from 1) of `step` does.
    pub fn script(self, step: &str, attempt: u32, what: Script) -> FakeRunner {
        self.scripts
            .lock()
            .expect("scripts")
            .insert((step.to_string(), attempt), what);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// The calls of one kind for `step`: their attempts, in order.
    pub fn attempts(&self, step: &str, kind: Kind) -> Vec<u32> {
        self.calls()
            .iter()
            .filter(|c| c.kind == kind && c.step == step)
            .map(|c| c.attempt)
            .collect()
    }

    /// Waits until the recorded calls satisfy `ok`; panics after `limit`.
    pub async fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn(&[Call]) -> bool) {
        let mut rx = self.changed.subscribe();
        let waited = tokio::time::timeout(limit, async {
            loop {
                if ok(&self.calls()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(
            waited.is_ok() && ok(&self.calls()),
            "runner `{}`: no {what} within {limit:?}; calls: {:?}",
            self.name,
            self.calls()
        );
    }

    /// Ends a hanging attempt with `outcome`.
    pub fn release(&self, step: &str, attempt: u32, outcome: Outcome) {
        let jobs = self.jobs.lock().expect("jobs");
        let job = jobs
            .values()
            .find(|j| j.step == step && j.attempt == attempt)
            .unwrap_or_else(|| panic!("no job for {step} attempt {attempt}"));
        job.end.send_replace(Some(outcome));
    }

    fn record(&self, call: Call) {
        self.calls.lock().expect("calls").push(call);
        self.changed.send_modify(|n| *n += 1);
    }

    fn job_of(
        &self,
        handle: &Handle,
    ) -> Result<(String, u32, watch::Receiver<Option<Outcome>>), RunnerError> {
        let jobs = self.jobs.lock().expect("jobs");
        let job = jobs.get(&handle.attempt_dir).ok_or_else(|| {
            RunnerError::Protocol(format!("no job at {}", handle.attempt_dir.display()))
        })?;
        Ok((job.step.clone(), job.attempt, job.end.subscribe()))
    }
}

/// Writes the job's declared outputs into its work folder, as a passing script would.
fn write_outputs(job: &Job) -> std::io::Result<()> {
    let work = job.attempt_dir.join("work");
    std::fs::create_dir_all(&work)?;
    for out in &job.outputs {
        let path = work.join(out.trim_end_matches('/'));
        if out.ends_with('/') {
            std::fs::create_dir_all(&path)?;
            std::fs::write(path.join("part"), format!("{} {}", job.step, job.attempt))?;
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, format!("{} {}", job.step, job.attempt))?;
        }
    }
    Ok(())
}

#[async_trait]
impl Runner for FakeRunner {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> Result<RunnerInfo, RunnerError> {
        Ok(RunnerInfo {
            reachable: true,
            detail: "fake".into(),
            problem: None,
            gpus_found: Vec::new(),
        })
    }

    async fn launch(&self, job: &Job) -> Result<Handle, RunnerError> {
        let (step, attempt) = (job.step.clone(), job.attempt);
        self.record(Call::new(Kind::Launch, &step, attempt));
        if let Some(known) = self.jobs.lock().expect("jobs").get(&job.attempt_dir) {
            return Ok(known.handle.clone());
        }
        let script = self
            .scripts
            .lock()
            .expect("scripts")
            .get(&(step.clone(), attempt))
            .cloned()
            .unwrap_or(Script::Pass);
        let end = match script {
            Script::Unavailable => {
                self.down.store(true, Ordering::SeqCst);
                return Err(RunnerError::Unavailable(format!(
                    "runner `{}` is scripted to be unavailable",
                    self.name
                )));
            }
            Script::Pass => {
                write_outputs(job)?;
                Some(Outcome::Exited { code: 0 })
            }
            Script::Exit(code) => Some(Outcome::Exited { code }),
            Script::Lost => Some(Outcome::Lost {
                reason: format!("runner `{}` lost the job", self.name),
            }),
            Script::Hang => None,
        };
        let handle = Handle {
            runner: self.name.clone(),
            attempt_dir: job.attempt_dir.clone(),
            data: serde_json::json!({ "step": step, "attempt": attempt }),
        };
        self.jobs.lock().expect("jobs").insert(
            job.attempt_dir.clone(),
            FakeJob {
                step: step.clone(),
                attempt,
                handle: handle.clone(),
                end: watch::channel(end).0,
            },
        );
        self.record(Call::new(Kind::Start, &step, attempt));
        Ok(handle)
    }

    async fn watch(&self, handle: &Handle) -> Result<Outcome, RunnerError> {
        let (step, attempt, mut end) = self.job_of(handle)?;
        self.record(Call::new(Kind::Watch, &step, attempt));
        let outcome = end
            .wait_for(Option::is_some)
            .await
            .map_err(|e| RunnerError::Protocol(e.to_string()))?;
        Ok(outcome.clone().expect("an outcome"))
    }

    async fn cancel(&self, handle: &Handle) -> Result<(), RunnerError> {
        let (step, attempt, _) = self.job_of(handle)?;
        // Recorded first: the outcome set next may end the run at once.
        self.record(Call::new(Kind::Cancel, &step, attempt));
        if let Some(job) = self.jobs.lock().expect("jobs").get(&handle.attempt_dir) {
            job.end.send_if_modified(|o| {
                let unset = o.is_none();
                if unset {
                    *o = Some(Outcome::Cancelled);
                }
                unset
            });
        }
        Ok(())
    }

    /// A job of the attempt folder that has not ended, as a real runner finds it on its
    /// machine.
    async fn launched(
        &self,
        _run: &str,
        step: &str,
        attempt: u32,
        attempt_dir: &std::path::Path,
    ) -> Result<Option<Handle>, RunnerError> {
        let jobs = self.jobs.lock().expect("jobs");
        let job = jobs
            .get(attempt_dir)
            .filter(|j| j.step == step && j.attempt == attempt && j.end.borrow().is_none());
        Ok(job.map(|j| j.handle.clone()))
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}
