//! The engine: owns the store, the artifact store and the runner pool, starts runs and drives
//! them (a new run and a resumed one are driven the same way, from what the store says).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use super::events::Control;
use super::home::Home;
use super::inventory::Inventory;
use super::job::merged_params;
use super::pool::{Pool, PoolGpu, PoolRunner};
use super::progress::Reporter;
use super::run_id::new_run_id;
use crate::cas::Cas;
use crate::dag::Dag;
use crate::store::{
    FORMAT_MAJOR, RunRecord, RunStatus, StepRecord, StepStatus, Store, StoreError, now_ms,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the user gave cannot run: params, inputs, placement, a request that does not fit
    /// the run's state.
    #[error("{0}")]
    Invalid(String),
    #[error("run `{0}` not found")]
    NoSuchRun(String),
    #[error("run `{run}` has no step `{step}`")]
    NoSuchStep { run: String, step: String },
    #[error("run `{0}` is still running")]
    Busy(String),
    /// The artifact store (this machine's CAS, or outputs a runner keeps) failed.
    #[error("{0}")]
    Artifacts(String),
    /// A runner could not be set up from the inventory, or is not there any more.
    #[error("{0}")]
    Runner(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl EngineError {
    /// A stable name for the kind of failure (`tuna::engine::…`), as the workflow's
    /// diagnostics have theirs.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Store(_) => "tuna::engine::store",
            EngineError::Invalid(_) => "tuna::engine::invalid",
            EngineError::NoSuchRun(_) => "tuna::engine::no_such_run",
            EngineError::NoSuchStep { .. } => "tuna::engine::no_such_step",
            EngineError::Busy(_) => "tuna::engine::busy",
            EngineError::Artifacts(_) => "tuna::engine::artifacts",
            EngineError::Runner(_) => "tuna::engine::runner",
            EngineError::Io(_) => "tuna::engine::io",
        }
    }

    /// Whether the input is at fault (exit code 2) rather than tuna's surroundings (3).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            EngineError::Invalid(_) | EngineError::NoSuchRun(_) | EngineError::NoSuchStep { .. }
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Steps at once; 0 = cores.
    pub jobs: usize,
    pub no_cache: bool,
    pub scheduled_time: Option<String>,
    /// The run's id, drawn beforehand (a daemon submission with an `Idempotency-Key`); a new
    /// one when `None`.
    pub run_id: Option<String>,
}

pub struct Engine {
    pub home: Home,
    pub store: Arc<Store>,
    pub cas: Arc<Cas>,
    pub(super) pool: Mutex<Pool>,
    pub(super) reporter: Arc<dyn Reporter>,
    pub(super) tuna_exe: PathBuf,
    /// What of this process's environment steps start from; also who may read which secrets.
    pub(super) step_env: tuna_runners::StepEnv,
    controls: Mutex<HashMap<String, UnboundedSender<Control>>>,
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Engine {
    /// Opens the home's stores and builds the runner pool from the inventory.
    /// `step_env` says what of this process's environment steps on this machine start from.
    pub fn open(
        home: Home,
        inventory: &Inventory,
        reporter: Arc<dyn Reporter>,
        step_env: &tuna_runners::StepEnv,
    ) -> Result<Engine, EngineError> {
        Engine::open_with(home, None, inventory, reporter, step_env)
    }

    /// [`Engine::open`] on the home's store opened already (a command that read it first
    /// keeps it, so that no other process takes it in between).
    pub fn open_on(
        home: Home,
        store: Store,
        inventory: &Inventory,
        reporter: Arc<dyn Reporter>,
        step_env: &tuna_runners::StepEnv,
    ) -> Result<Engine, EngineError> {
        Engine::open_with(home, Some(store), inventory, reporter, step_env)
    }

    fn open_with(
        home: Home,
        store: Option<Store>,
        inventory: &Inventory,
        reporter: Arc<dyn Reporter>,
        step_env: &tuna_runners::StepEnv,
    ) -> Result<Engine, EngineError> {
        let tuna_exe = std::env::current_exe()?;
        let shim = std::env::var_os("TUNA_SHIM")
            .map(PathBuf::from)
            .unwrap_or_else(|| tuna_exe.with_file_name("tuna-shim"));
        let base_env = step_env.base();
        let mut runners = Vec::new();
        for (name, spec) in &inventory.runners {
            let slots = spec.slot_count();
            let mut gpus = Vec::new();
            for g in &spec.gpus {
                let memory = match &g.memory {
                    Some(m) => Some(crate::workflow::parse_size(m).map_err(|e| {
                        EngineError::Runner(format!("runner `{name}`: gpu memory `{m}`: {e}"))
                    })?),
                    None => None,
                };
                for _ in 0..g.count {
                    gpus.push(PoolGpu {
                        kind: g.kind.to_lowercase(),
                        index: gpus.len() as u32,
                        memory,
                        busy: false,
                    });
                }
            }
            let runner = super::runner_build::build(
                name,
                spec,
                slots,
                gpus.iter()
                    .map(|g: &PoolGpu| tuna_runners::Gpu {
                        kind: g.kind.clone(),
                        index: g.index,
                    })
                    .collect(),
                &shim,
                &base_env,
                Some(&home.supervisor()),
            )
            .map_err(|e| EngineError::Runner(format!("runner `{name}`: {e}")))?;
            runners.push(PoolRunner {
                gpus,
                price_per_hour: spec.price_per_hour.unwrap_or(0.0),
                ..PoolRunner::new(name, &spec.kind, runner, slots)
            });
        }
        Engine::with_runners_on(home, store, runners, reporter, step_env)
    }

    /// Opens the home's stores with a pool of runners built already: what [`Engine::open`]
    /// does after building them from the inventory, and how a program (or a test) drives
    /// runs on runners of its own.
    pub fn with_runners(
        home: Home,
        runners: Vec<PoolRunner>,
        reporter: Arc<dyn Reporter>,
        step_env: &tuna_runners::StepEnv,
    ) -> Result<Engine, EngineError> {
        Engine::with_runners_on(home, None, runners, reporter, step_env)
    }

    fn with_runners_on(
        home: Home,
        store: Option<Store>,
        runners: Vec<PoolRunner>,
        reporter: Arc<dyn Reporter>,
        step_env: &tuna_runners::StepEnv,
    ) -> Result<Engine, EngineError> {
        home.create()?;
        let store = match store {
            Some(s) => s,
            None => Store::open(&home.db())?,
        };
        let cas = Cas::open(&home.cas())
            .map_err(|e| EngineError::Artifacts(format!("artifact store: {e}")))?;
        let tuna_exe = std::env::current_exe()?;
        Ok(Engine {
            home,
            store: Arc::new(store),
            cas: Arc::new(cas),
            pool: Mutex::new(Pool { runners }),
            reporter,
            tuna_exe,
            step_env: step_env.clone(),
            controls: Mutex::new(HashMap::new()),
        })
    }

    /// What this engine tells about the runs it drives.
    pub fn reporter(&self) -> Arc<dyn Reporter> {
        self.reporter.clone()
    }

    /// The engine with another reporter (one that also feeds experiment tracking).
    pub fn with_reporter(self, reporter: Arc<dyn Reporter>) -> Engine {
        Engine { reporter, ..self }
    }

    /// Sends a control message to a run this process drives; false if it drives no such run.
    pub fn control(&self, run: &str, c: Control) -> bool {
        self.controls
            .lock()
            .expect("controls")
            .get(run)
            .is_some_and(|tx| tx.send(c).is_ok())
    }

    /// Sends a control message to every run this process drives.
    pub fn control_all(&self, c: Control) {
        for tx in self.controls.lock().expect("controls").values() {
            let _ = tx.send(c);
        }
    }

    /// The runner of the inventory called `name`.
    pub(super) fn runner_named(&self, name: &str) -> Option<Arc<dyn tuna_runners::Runner>> {
        let pool = self.pool.lock().expect("pool");
        pool.by_name(name).map(|i| pool.runner(i).runner.clone())
    }

    pub(super) fn register(&self, run: &str, tx: UnboundedSender<Control>) {
        self.controls
            .lock()
            .expect("controls")
            .insert(run.to_string(), tx);
    }

    pub(super) fn unregister(&self, run: &str) {
        self.controls.lock().expect("controls").remove(run);
    }

    /// Checks what can be checked before anything runs (params, placement, inputs), then
    /// records a new run with every step Pending. Nothing runs until [`Engine::drive`].
    pub fn create_run(
        &self,
        dag: &Dag,
        text: &str,
        overrides: &BTreeMap<String, String>,
        opts: &RunOptions,
    ) -> Result<String, EngineError> {
        let wf = dag.workflow();
        let params = merged_params(wf, overrides).map_err(EngineError::Invalid)?;
        self.preflight(dag, &params)?;
        let id = match &opts.run_id {
            Some(id) => id.clone(),
            None => self.fresh_run_id()?,
        };
        let run = RunRecord {
            format: FORMAT_MAJOR,
            id: id.clone(),
            workflow: wf.name.clone(),
            workflow_path: wf.path.clone(),
            workflow_text: text.to_string(),
            params: overrides.clone(),
            status: RunStatus::Running,
            jobs: if opts.jobs == 0 { cores() } else { opts.jobs },
            no_cache: opts.no_cache,
            created_at: now_ms(),
            ended_at: None,
            scheduled_time: opts.scheduled_time.clone(),
        };
        for name in dag.topo_order() {
            self.store.put_step(&StepRecord::new(&id, name))?;
        }
        self.store.put_run(&run)?;
        self.store.flush()?;
        Ok(id)
    }

    /// A run id no run has. Ids have 16 random bits per second: many runs a second (the
    /// daemon) can draw one twice.
    pub fn fresh_run_id(&self) -> Result<String, EngineError> {
        let mut id = new_run_id();
        while self.store.run(&id)?.is_some() {
            id = new_run_id();
        }
        Ok(id)
    }

    /// Asks each runner a step could get GPUs on whether its machines have the GPU types the
    /// steps ask for (a Ray cluster is asked; declared GPUs of other runners count as there).
    pub async fn check_runner_gpus(&self, dag: &Dag) -> Result<(), EngineError> {
        let mut asks: BTreeMap<usize, (Arc<dyn tuna_runners::Runner>, Vec<String>)> =
            BTreeMap::new();
        {
            let pool = self.pool.lock().expect("pool");
            for step in dag.workflow().steps.values() {
                for alt in &step.runs_on {
                    let crate::workflow::RunsOn::Selector(sel) = alt else {
                        continue;
                    };
                    let Some(kind) = &sel.gpu else {
                        continue;
                    };
                    for (i, r) in pool.runners.iter().enumerate() {
                        if r.gpus.iter().any(|g| &g.kind == kind) {
                            let entry = asks
                                .entry(i)
                                .or_insert_with(|| (r.runner.clone(), Vec::new()));
                            if !entry.1.contains(kind) {
                                entry.1.push(kind.clone());
                            }
                        }
                    }
                }
            }
        }
        let mut problems = Vec::new();
        for (runner, kinds) in asks.into_values() {
            match runner.check_gpu_types(&kinds).await {
                // A cluster that does not answer now is placement's business (it may answer
                // by the time a step needs it, or the step goes elsewhere).
                Ok(()) | Err(tuna_runners::RunnerError::Unavailable(_)) => {}
                Err(e) => problems.push(e),
            }
        }
        refused_by_runners(problems)
    }

    /// Asks each runner a step may run on whether its artifact store can be used (a Ray
    /// runner's bucket: there, reachable, credentials accepted), so a bad store is refused
    /// before anything runs; each message names the runner and what to fix.
    pub async fn check_runner_stores(&self, dag: &Dag) -> Result<(), EngineError> {
        let runners: Vec<Arc<dyn tuna_runners::Runner>> = {
            let pool = self.pool.lock().expect("pool");
            let mut idx: Vec<usize> = dag
                .workflow()
                .steps
                .values()
                .flat_map(|s| pool.candidates(&s.runs_on))
                .collect();
            idx.sort_unstable();
            idx.dedup();
            idx.into_iter()
                .map(|i| pool.runner(i).runner.clone())
                .collect()
        };
        let mut problems = Vec::new();
        for runner in runners {
            if let Err(e) = runner.check_store().await {
                problems.push(e);
            }
        }
        refused_by_runners(problems)
    }

    /// Placement and inputs: a workflow that cannot run is refused before it half-runs.
    pub fn preflight(
        &self,
        dag: &Dag,
        params: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let wf = dag.workflow();
        let pool = self.pool.lock().expect("pool");
        let mut problems = Vec::new();
        for step in wf.steps.values() {
            if let Err(why) = pool.feasible(&step.runs_on) {
                problems.push(format!("step `{}`: {why}", step.name));
            }
            if let Err(why) = super::secrets::read(wf, step, &self.step_env) {
                problems.push(format!("step `{}`: {why}", step.name));
            }
            for input in &step.inputs {
                let p = wf.project_dir.join(input.trim_end_matches('/'));
                if !p.exists() {
                    problems.push(format!(
                        "step `{}`: input `{input}` does not exist ({})",
                        step.name,
                        p.display()
                    ));
                }
            }
            // Project files a `uses:` step names in `with` (absolute paths may be on a runner).
            for (key, rel) in crate::cache::with_paths(step, params) {
                let p = wf.project_dir.join(&rel);
                if let Some(problem) = crate::workflow::relative_path_escapes(&rel) {
                    problems.push(format!(
                        "step `{}`: `with.{key}` `{rel}` {problem}; write an absolute path to \
                         read a file outside the project",
                        step.name
                    ));
                } else if std::path::Path::new(&rel).is_relative() && !p.exists() {
                    problems.push(format!(
                        "step `{}`: `with.{key}` names `{rel}`, which does not exist ({})",
                        step.name,
                        p.display()
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Invalid(problems.join("\n")))
        }
    }

    /// Makes a failed, cancelled or crashed run runnable again: finished steps are kept, steps
    /// that were launched are left to be adopted, the rest go back to Pending.
    pub fn prepare_resume(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        let mut run = self
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::NoSuchRun(run_id.to_string()))?;
        if run.status == RunStatus::Passed {
            return Err(EngineError::Invalid(format!(
                "run `{run_id}` already passed; nothing to resume"
            )));
        }
        for mut rec in self.store.steps(run_id)? {
            if matches!(
                rec.status,
                StepStatus::Failed
                    | StepStatus::Skipped
                    | StepStatus::Cancelled
                    | StepStatus::TimedOut
                    | StepStatus::Waiting
            ) {
                rec.status = StepStatus::Pending;
                rec.message = None;
                rec.not_before = None;
                rec.ended_at = None;
                self.store.put_step(&rec)?;
            }
        }
        run.status = RunStatus::Running;
        run.ended_at = None;
        self.store.put_run(&run)?;
        self.store.flush()?;
        Ok(run)
    }

    /// The newest run, if any.
    pub fn last_run(&self) -> Result<Option<RunRecord>, EngineError> {
        Ok(self
            .store
            .runs()?
            .into_iter()
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))))
    }
}

/// What runners said against a run before it starts, as one error: the input's fault (exit
/// code 2) where every problem is what the steps ask (a GPU type a cluster lacks), else tuna's
/// surroundings (3: a bucket that is missing or refuses the credentials, a cluster that
/// refuses its token).
fn refused_by_runners(problems: Vec<tuna_runners::RunnerError>) -> Result<(), EngineError> {
    if problems.is_empty() {
        return Ok(());
    }
    let text = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    if problems.iter().all(tuna_runners::RunnerError::is_input) {
        Err(EngineError::Invalid(text))
    } else {
        Err(EngineError::Runner(text))
    }
}

impl Engine {
    /// Drives a run recorded in the store until it ends: a new one from [`Engine::create_run`],
    /// or one made ready by [`Engine::prepare_resume`].
    pub async fn drive(&self, run_id: &str, resumed: bool) -> Result<RunStatus, EngineError> {
        self.drive_loaded(run_id, resumed, None).await
    }

    /// [`Engine::drive`], given the run's workflow as [`Engine::create_run`] was (loaded from
    /// the text stored with the run): it is not parsed again.
    pub async fn drive_loaded(
        &self,
        run_id: &str,
        resumed: bool,
        dag: Option<Dag>,
    ) -> Result<RunStatus, EngineError> {
        let dispatcher = super::dispatcher::Dispatcher::load(self, run_id, dag)?;
        // A workflow without `leaderboard:` has no rows to record: its end reads nothing back.
        let board = !dispatcher.workflow().leaderboard.is_empty();
        let status = dispatcher.drive(resumed).await?;
        if board {
            self.end_of_run(run_id);
        }
        Ok(status)
    }

    /// The end-of-run hook, one for every driver: the run's `leaderboard:` rows go into the
    /// store (recording a run again replaces its rows, never doubles them). A failure is a
    /// warning: the run's own result stands.
    pub fn end_of_run(&self, run_id: &str) {
        match super::leaderboard::record_run(&self.store, run_id) {
            Ok(0) => {}
            Ok(n) => tracing::info!(run = %run_id, rows = n, "leaderboard rows recorded"),
            Err(e) => {
                tracing::warn!(run = %run_id, "leaderboard rows not recorded: {e}");
                eprintln!("warning: leaderboard rows of run {run_id} not recorded: {e}");
            }
        }
    }
}

impl Engine {
    /// Cancels a run that no tuna process drives (its driver crashed): stops its still-running
    /// steps through their runners and marks it Cancelled. Returns how many steps were stopped.
    pub async fn cancel_detached(&self, run_id: &str) -> Result<usize, EngineError> {
        let mut run = self
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::NoSuchRun(run_id.to_string()))?;
        if run.status != RunStatus::Running {
            return Err(EngineError::Invalid(format!(
                "run `{run_id}` is not running (it is {})",
                run.status.as_str()
            )));
        }
        let mut stopped = 0;
        for mut rec in self.store.steps(run_id)? {
            if rec.status.is_final() {
                continue;
            }
            let recorded = rec
                .handle
                .clone()
                .zip(rec.attempts.last())
                .and_then(|(h, att)| {
                    let pool = self.pool.lock().expect("pool");
                    pool.by_name(&att.runner)
                        .map(|i| (pool.runner(i).runner.clone(), h))
                });
            let launched = match recorded {
                Some(found) => Some(found),
                None => self.launched_unrecorded(&rec).await,
            };
            if !rec.status.is_active() && rec.status != StepStatus::Waiting && launched.is_none() {
                continue;
            }
            if let Some((r, h)) = launched {
                let _ = r.cancel(&h).await;
                let _ = r.watch(&h).await;
                stopped += 1;
            }
            rec.status = StepStatus::Cancelled;
            rec.message = Some("cancelled".into());
            rec.ended_at = Some(now_ms());
            self.store.put_step(&rec)?;
        }
        run.status = RunStatus::Cancelled;
        run.ended_at = Some(now_ms());
        self.store.put_run(&run)?;
        self.store.flush()?;
        Ok(stopped)
    }

    /// A step's attempt that was launched though the store lost its handle (its driver
    /// crashed before the record was written): the runner and the attempt's handle, asked of
    /// the runners that can know. The runner an active record names for its latest attempt
    /// (that launch was recorded before it was made, its handle only after); and the runners
    /// recording their own launches (the local runner's journal), for the step's latest
    /// attempt when it is recorded active, else its next one, which the store may not know.
    async fn launched_unrecorded(
        &self,
        rec: &StepRecord,
    ) -> Option<(Arc<dyn tuna_runners::Runner>, tuna_runners::Handle)> {
        let attempt = if rec.status.is_active() {
            rec.attempt().max(1)
        } else {
            rec.attempt() + 1
        };
        let dir = self.home.attempt_dir(&rec.run, &rec.step, attempt);
        let asks: Vec<_> = {
            let pool = self.pool.lock().expect("pool");
            let named = (rec.attempts.last())
                .filter(|_| rec.status.is_active())
                .and_then(|att| {
                    let i = pool.by_name(&att.runner)?;
                    Some((pool.runner(i).runner.clone(), att.n, att.dir.clone()))
                })
                .filter(|(r, ..)| !r.records_launches());
            let recording = (pool.runners.iter())
                .filter(|r| r.runner.records_launches())
                .map(|r| (r.runner.clone(), attempt, dir.clone()));
            named.into_iter().chain(recording).collect()
        };
        for (r, n, dir) in asks {
            if let Ok(Some(h)) = r.launched(&rec.run, &rec.step, n, &dir).await {
                return Some((r, h));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tuna_runners::RunnerError;

    #[test]
    fn runners_refusing_what_steps_ask_is_input_and_a_failing_runner_is_not() {
        assert!(refused_by_runners(Vec::new()).is_ok());
        let lacks = || RunnerError::Refused("runner `ray`: no GPU of type `h100`".into());
        let e = refused_by_runners(vec![lacks()]).unwrap_err();
        assert!(e.is_input(), "{e}");
        assert_eq!(e.code(), "tuna::engine::invalid");
        let bucket = RunnerError::remote("ray", "runner `ray`: bucket `b` does not exist");
        let e = refused_by_runners(vec![lacks(), bucket]).unwrap_err();
        assert!(!e.is_input(), "{e}");
        assert_eq!(e.code(), "tuna::engine::runner");
        assert!(e.to_string().contains("h100") && e.to_string().contains("bucket `b`"));
    }
}
