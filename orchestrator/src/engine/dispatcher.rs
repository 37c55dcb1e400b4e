//! The dispatcher: owns all state of one run while it is driven, and `select!`s over executor
//! events, retry timers and control messages.
//!
//! Every state change is written to the store, and the store flushed, before the action that
//! follows it (a launch, or the end of the run): one flush per turn of the loop covers all the
//! changes of that turn. A step found Launching or Running (after a crash) is adopted by
//! launching the same attempt again: the runner's launch is idempotent per attempt, so a
//! command never runs twice in one attempt.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tuna_runners::{Outcome, Resources};

use super::artifacts::{self, Prep};
use super::engine::{Engine, EngineError};
use super::events::{Collected, Control, Event};
use super::executor;
use super::gate;
use super::job::{JobContext, RUN_ID, SCHEDULED_TIME, build_job, key_inputs, merged_params};
use super::ledger::{Cost, check_budget};
use super::pool::{Assignment, Placement};
use super::progress::Progress;
use crate::cache::KeyInputs;
use crate::dag::Dag;
use crate::store::{
    AttemptRecord, CacheEntry, FORMAT_MAJOR, LastKey, Location, RunRecord, RunStatus, StepRecord,
    StepStatus, now_ms,
};
use crate::workflow::{RetryOn, Step};

/// A launch to make once the records before it are flushed: the runner, the job, the step's
/// declared outputs, and the upstream outputs to bring from the runners that keep them.
type Launch = (
    Arc<dyn tuna_runners::Runner>,
    tuna_runners::Job,
    Vec<String>,
    Vec<Prep>,
);

pub struct Dispatcher<'e> {
    eng: &'e Engine,
    dag: Dag,
    run: RunRecord,
    params: BTreeMap<String, String>,
    recs: HashMap<String, StepRecord>,
    /// Key inputs computed for a step about to run, stored as its last key when it passes.
    keys: HashMap<String, KeyInputs>,
    assignments: HashMap<String, Assignment>,
    /// Attempts started in this process, for the retry budget.
    tries: HashMap<String, u32>,
    /// When a step started waiting for capacity.
    waiting_since: HashMap<String, u64>,
    active: usize,
    /// Topological indices of the steps to look at when scheduling: Pending or Waiting, with
    /// every upstream step final (so the scan is over the frontier, not the whole DAG).
    todo: std::collections::BTreeSet<usize>,
    /// Step name → topological index.
    index: HashMap<String, usize>,
    stop: Option<RunStatus>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl<'e> Dispatcher<'e> {
    /// Loads a run (new or resumed) from the store.
    pub fn load(eng: &'e Engine, run_id: &str) -> Result<Dispatcher<'e>, EngineError> {
        let run = eng
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::NoSuchRun(run_id.to_string()))?;
        let dag =
            crate::workflow::load_str(&run.workflow_path, &run.workflow_text).map_err(|e| {
                EngineError::Invalid(format!(
                    "the workflow stored with run `{run_id}` no longer loads:\n{}",
                    e.render_plain()
                ))
            })?;
        let params = merged_params(dag.workflow(), &run.params).map_err(EngineError::Invalid)?;
        let mut recs = HashMap::new();
        for rec in eng.store.steps(run_id)? {
            recs.insert(rec.step.clone(), rec);
        }
        for name in dag.topo_order() {
            recs.entry(name.clone())
                .or_insert_with(|| StepRecord::new(run_id, name));
        }
        // A service step whose server is gone (the run ended, the machine restarted) starts it
        // again when steps after it are still to run.
        for name in dag.topo_order() {
            let service = matches!(&dag.workflow().steps[name].action,
                crate::workflow::Action::Uses { kind, .. }
                    if tuna_steps::find(kind).is_some_and(|k| k.is_service()));
            let rec = &recs[name];
            if service
                && rec.status == StepStatus::Passed
                && rec
                    .outputs_dir
                    .as_deref()
                    .is_none_or(|d| super::services::live_server(d).is_none())
                && dag
                    .dependents(name)
                    .iter()
                    .any(|d| !recs[*d].status.is_final())
            {
                let fresh = StepRecord::new(run_id, name);
                let attempts = recs[name].attempts.clone();
                recs.insert(name.clone(), StepRecord { attempts, ..fresh });
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let todo = dag
            .topo_order()
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(recs[*n].status, StepStatus::Pending | StepStatus::Waiting))
            .filter(|(_, n)| dag.needs(n).iter().all(|u| recs[u].status.is_final()))
            .map(|(i, _)| i)
            .collect();
        let index = dag
            .topo_order()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Ok(Dispatcher {
            eng,
            dag,
            run,
            params,
            recs,
            keys: HashMap::new(),
            assignments: HashMap::new(),
            tries: HashMap::new(),
            waiting_since: HashMap::new(),
            active: 0,
            todo,
            index,
            stop: None,
            tx,
            rx,
        })
    }

    /// Drives the run to its end; returns its final status.
    pub async fn drive(mut self, resumed: bool) -> Result<RunStatus, EngineError> {
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
        self.eng.register(&self.run.id, ctl_tx);
        self.eng.reporter.report(&Progress::RunStarted {
            run: &self.run.id,
            workflow: &self.run.workflow,
            steps: self.dag.topo_order().len(),
            resumed,
        });
        let result = self.drive_inner(&mut ctl_rx).await;
        self.eng.unregister(&self.run.id);
        result
    }

    async fn drive_inner(
        &mut self,
        ctl_rx: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<RunStatus, EngineError> {
        self.adopt()?;
        loop {
            let launches = self.schedule()?;
            self.eng.store.flush()?;
            for (runner, job, outputs, preps) in launches {
                executor::spawn(
                    runner,
                    self.eng.cas.clone(),
                    job,
                    outputs,
                    preps,
                    self.tx.clone(),
                );
            }
            if self.active == 0 && (self.stop.is_some() || self.all_final()) {
                break;
            }
            let timer = self.next_timer();
            if self.active == 0 && timer.is_none() {
                // Nothing runs and nothing will wake us: the steps left cannot start.
                tracing::error!(run = %self.run.id, "scheduler stalled with steps left; ending the run");
                break;
            }
            tokio::select! {
                Some(ev) = self.rx.recv() => {
                    self.on_event(ev)?;
                    while let Ok(ev) = self.rx.try_recv() {
                        self.on_event(ev)?;
                    }
                }
                Some(c) = ctl_rx.recv() => self.on_control(c).await,
                _ = sleep_until_ms(timer), if timer.is_some() => {}
            }
        }
        self.finish()
    }

    /// Dependents of a step that just became final join the frontier once all their
    /// upstream steps are final.
    fn release_dependents(&mut self, name: &str) {
        for d in self.dag.dependents(name) {
            let ready = matches!(
                self.recs[d].status,
                StepStatus::Pending | StepStatus::Waiting
            ) && self
                .dag
                .needs(d)
                .iter()
                .all(|u| self.recs[u].status.is_final());
            if ready {
                self.todo.insert(self.index[d]);
            }
        }
    }

    fn requeue(&mut self, name: &str) {
        self.todo.insert(self.index[name]);
    }

    fn all_final(&self) -> bool {
        self.recs.values().all(|r| r.status.is_final())
    }

    fn step(&self, name: &str) -> &Step {
        &self.dag.workflow().steps[name]
    }

    fn save(&mut self, name: &str) -> Result<(), EngineError> {
        let rec = &self.recs[name];
        self.eng.store.put_step(rec)?;
        if rec.status.is_final() {
            self.release_dependents(name);
        }
        let rec = &self.recs[name];
        self.eng.reporter.report(&Progress::Step {
            step: name,
            status: rec.status,
            attempt: rec.attempt(),
            runner: rec.attempts.last().map(|a| a.runner.as_str()),
            message: rec.message.as_deref(),
        });
        Ok(())
    }

    /// Steps found Launching or Running: launch the same attempt again, which adopts it.
    fn adopt(&mut self) -> Result<(), EngineError> {
        let names: Vec<String> = self
            .dag
            .topo_order()
            .iter()
            .filter(|n| self.recs[*n].status.is_active())
            .cloned()
            .collect();
        for name in names {
            let rec = &self.recs[&name];
            let last = rec.attempts.last().cloned();
            let assignment = last.as_ref().and_then(|a| {
                let pool = self.eng.pool.lock().expect("pool");
                pool.by_name(&a.runner).map(|i| Assignment {
                    runner: i,
                    gpus: a.gpus.clone(),
                })
            });
            match (last, assignment) {
                (Some(att), Some(asg)) => {
                    self.eng.pool.lock().expect("pool").take(&asg);
                    self.restore_upstream(&name)?;
                    let (job, preps) = self.job_for(&name, att.n, &att.dir, &asg)?;
                    let runner = self
                        .eng
                        .pool
                        .lock()
                        .expect("pool")
                        .runner(asg.runner)
                        .runner
                        .clone();
                    self.assignments.insert(name.clone(), asg);
                    self.tries.insert(name.clone(), 1);
                    self.active += 1;
                    let outputs = self.step(&name).outputs.clone();
                    executor::spawn(
                        runner,
                        self.eng.cas.clone(),
                        job,
                        outputs,
                        preps,
                        self.tx.clone(),
                    );
                }
                (att, _) => {
                    let why = match att {
                        Some(a) => format!(
                            "runner `{}` of attempt {} is no longer in the inventory",
                            a.runner, a.n
                        ),
                        None => "no attempt was recorded".to_string(),
                    };
                    let rec = self.recs.get_mut(&name).expect("record");
                    rec.status = StepStatus::Pending;
                    rec.message = Some(why);
                    self.save(&name)?;
                    self.requeue(&name);
                }
            }
        }
        Ok(())
    }

    /// Cache hits upstream of `name` get their outputs restored from the artifact store, so
    /// `${{ steps.X.outputs.Y }}` names real paths. Outputs kept on a runner are left where
    /// they are here ([`Dispatcher::job_for`] says how they reach the step).
    fn restore_upstream(&mut self, name: &str) -> Result<(), EngineError> {
        for need in self.dag.needs(name).to_vec() {
            let rec = &self.recs[&need];
            if rec.outputs_dir.is_some() || rec.outputs.is_empty() {
                continue;
            }
            let dir = self.eng.home.restored_dir(&self.run.id, &need);
            for (out, digest) in &rec.outputs {
                if Location::of(&rec.locations, out).runner().is_some() {
                    continue;
                }
                let dest = dir.join(out.trim_end_matches('/'));
                if dest.symlink_metadata().is_ok() {
                    continue;
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                self.eng.cas.materialize(digest, &dest).map_err(|e| {
                    EngineError::Invalid(format!("restoring output `{out}` of `{need}`: {e}"))
                })?;
            }
            let rec = self.recs.get_mut(&need).expect("record");
            rec.outputs_dir = Some(dir);
            self.eng.store.put_step(rec)?;
        }
        Ok(())
    }

    /// The job of one attempt, and how the upstream outputs kept on runners reach it: linked
    /// in place on the runner that keeps them, streamed to another ssh runner, or brought
    /// into the local store for a step on this machine.
    fn job_for(
        &self,
        name: &str,
        attempt: u32,
        dir: &std::path::Path,
        asg: &Assignment,
    ) -> Result<(tuna_runners::Job, Vec<Prep>), EngineError> {
        let (target, remote) = {
            let pool = self.eng.pool.lock().expect("pool");
            let r = pool.runner(asg.runner);
            (
                r.name.clone(),
                r.runner.remote_attempt_dir(&self.run.id, name, attempt),
            )
        };
        let mut preps = Vec::new();
        let mut stored = HashMap::new();
        for need in self.dag.needs(name) {
            let rec = &self.recs[need];
            for (out, digest) in &rec.outputs {
                let Some(keeper) = Location::of(&rec.locations, out).runner() else {
                    continue;
                };
                let from = self.eng.runner_named(keeper).ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "output {out} of step `{need}` is kept on runner `{keeper}`, which is no \
                         longer in the runner inventory; put it back, or run `{need}` again"
                    ))
                })?;
                let listing = artifacts::listing(&self.eng.cas, digest).map_err(|e| {
                    EngineError::Invalid(format!("output {out} of step `{need}`: {e}"))
                })?;
                if remote.is_some() {
                    if keeper != target {
                        preps.push(Prep::ToRunner {
                            from,
                            output: format!("{need}/{out}"),
                            files: listing.files.clone(),
                        });
                    }
                    stored.insert((need.clone(), out.clone()), listing);
                } else {
                    let outputs_dir = rec.outputs_dir.clone().ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "upstream step `{need}` has no outputs folder"
                        ))
                    })?;
                    preps.push(Prep::ToLocal {
                        from,
                        output: format!("{need}/{out}"),
                        digest: *digest,
                        dest: outputs_dir.join(out.trim_end_matches('/')),
                    });
                }
            }
        }
        let outputs_dir =
            |s: &str| -> Option<PathBuf> { self.recs.get(s).and_then(|r| r.outputs_dir.clone()) };
        let stored_at = |s: &str, out: &str| stored.get(&(s.to_string(), out.to_string())).cloned();
        let ctx = JobContext {
            run_id: &self.run.id,
            scheduled_time: self.run.scheduled_time.as_deref(),
            params: &self.params,
            outputs_dir: &outputs_dir,
            stored: &stored_at,
            tuna_exe: &self.eng.tuna_exe,
        };
        let step = self.step(name);
        let job = build_job(
            self.dag.workflow(),
            step,
            &ctx,
            attempt,
            dir,
            Resources {
                slots: 1,
                gpus: asg.gpus.clone(),
            },
            remote.as_deref(),
        )
        .map_err(EngineError::Invalid)?;
        Ok((job, preps))
    }

    /// One pass over the steps in topological order: skip what cannot run, restore cache hits,
    /// place and record what can start. Returns the launches to make after the flush.
    fn schedule(&mut self) -> Result<Vec<Launch>, EngineError> {
        let mut launches = Vec::new();
        if self.stop.is_some() {
            return Ok(launches);
        }
        let now = now_ms();
        // A pass can make steps ready (a cache hit, a skip): go again until one adds nothing.
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let todo: Vec<usize> = self
                .todo
                .iter()
                .copied()
                .filter(|i| seen.insert(*i))
                .collect();
            if todo.is_empty() {
                break;
            }
            self.schedule_pass(todo, now, &mut launches)?;
        }
        Ok(launches)
    }

    fn schedule_pass(
        &mut self,
        todo: Vec<usize>,
        now: u64,
        launches: &mut Vec<Launch>,
    ) -> Result<(), EngineError> {
        for i in todo {
            let order = self.dag.topo_order();
            let name = &order[i];
            let rec = &self.recs[name];
            if !matches!(rec.status, StepStatus::Pending | StepStatus::Waiting) {
                self.todo.remove(&i);
                continue;
            }
            let needs = self.dag.needs(name);
            let bad = needs.iter().find(|n| {
                matches!(
                    self.recs[*n].status,
                    StepStatus::Failed | StepStatus::TimedOut | StepStatus::Skipped
                )
            });
            if let Some(bad) = bad {
                let (name, bad) = (name.clone(), bad.clone());
                let rec = self.recs.get_mut(&name).expect("record");
                rec.status = StepStatus::Skipped;
                rec.message = Some(format!("upstream step `{bad}` did not pass"));
                rec.ended_at = Some(now);
                self.save(&name)?;
                self.todo.remove(&i);
                continue;
            }
            if !needs.iter().all(|n| self.recs[n].status.is_done())
                || rec.not_before.is_some_and(|t| t > now)
            {
                continue;
            }
            let name = name.clone();
            if self.try_cache(&name)? {
                self.todo.remove(&i);
                continue;
            }
            if self.active >= self.run.jobs {
                continue;
            }
            let placement = self
                .eng
                .pool
                .lock()
                .expect("pool")
                .try_place(&self.step(&name).runs_on);
            match placement {
                Placement::Placed(asg) => {
                    if let Err(why) = self.within_budget(&name, &asg, now) {
                        self.eng.pool.lock().expect("pool").release(&asg);
                        let rec = self.recs.get_mut(&name).expect("record");
                        rec.status = StepStatus::Failed;
                        rec.message = Some(why);
                        rec.ended_at = Some(now);
                        self.save(&name)?;
                        self.todo.remove(&i);
                        continue;
                    }
                    launches.push(self.start_attempt(&name, asg)?);
                    self.todo.remove(&i);
                }
                Placement::Wait(why) => self.wait_for_capacity(&name, why, now)?,
                Placement::Never(why) => {
                    self.fail(&name, why, RetryOn::Capacity, StepStatus::Failed)?
                }
            }
        }
        Ok(())
    }

    /// The workflow's `budget`: what the run spent so far plus what this step may spend (its
    /// timeout × its GPUs × the runner's price, when it has a timeout) must stay within it.
    fn within_budget(&self, name: &str, asg: &Assignment, now: u64) -> Result<(), String> {
        let Some(budget) = &self.dag.workflow().budget else {
            return Ok(());
        };
        let spent = Cost::of_run(self.recs.values(), now);
        let price = self
            .eng
            .pool
            .lock()
            .expect("pool")
            .runner(asg.runner)
            .price_per_hour;
        let next = self.step(name).timeout.map_or(Cost::default(), |t| {
            let gpu_hours = t.as_secs_f64() / 3600.0 * asg.gpus.len() as f64;
            Cost {
                gpu_hours,
                cost: gpu_hours * price,
            }
        });
        check_budget(budget, spent, next)
    }

    /// A cache hit: record Cached and the stored outputs. Also remembers the key inputs.
    fn try_cache(&mut self, name: &str) -> Result<bool, EngineError> {
        if self.keys.contains_key(name) {
            return Ok(false); // looked up already: a miss waiting for a slot
        }
        let step = self.step(name).clone();
        let runner = self
            .eng
            .pool
            .lock()
            .expect("pool")
            .cache_identity(&step.runs_on, step.cache.per_runner);
        let inputs = {
            let recs = &self.recs;
            let mut params = self.params.clone();
            params.insert(RUN_ID.into(), self.run.id.clone());
            params.insert(
                SCHEDULED_TIME.into(),
                self.run.scheduled_time.clone().unwrap_or_default(),
            );
            key_inputs(
                self.dag.workflow(),
                &step,
                &params,
                |s| recs.get(s).map(|r| &r.outputs),
                &runner,
            )
        };
        let inputs = match inputs {
            Ok(i) => i,
            Err(e) => {
                self.fail(name, e, RetryOn::Failure, StepStatus::Failed)?;
                return Ok(true);
            }
        };
        let key = inputs.key();
        if step.cache.enabled
            && !self.run.no_cache
            && let Some(entry) = self.eng.store.cache_entry(&key)?
            && self.outputs_there(name, &entry)
        {
            let rec = self.recs.get_mut(name).expect("record");
            rec.status = StepStatus::Cached;
            rec.cache_key = Some(key.clone());
            rec.outputs = entry.outputs;
            rec.locations = entry.locations;
            rec.metrics = entry.metrics;
            rec.message = Some(format!("cache hit from run {}", entry.run));
            rec.ended_at = Some(now_ms());
            self.save(name)?;
            self.remember_key(name, key, inputs)?;
            return Ok(true);
        }
        self.recs.get_mut(name).expect("record").cache_key = Some(key);
        self.keys.insert(name.to_string(), inputs);
        Ok(false)
    }

    /// Whether a cache entry's outputs are all where it records them (kept ones are looked
    /// for on their runner's machine, which blocks: this thread is marked as blocking then).
    fn outputs_there(&self, name: &str, entry: &CacheEntry) -> bool {
        let check = || {
            artifacts::check(
                &self.eng.cas,
                &|n: &str| self.eng.runner_named(n),
                &entry.outputs,
                &entry.locations,
                &mut HashMap::new(),
            )
        };
        let remote = entry.locations.values().any(|l| l.runner().is_some());
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let reasons = if remote && multi_thread {
            tokio::task::block_in_place(check)
        } else {
            check()
        };
        if !reasons.is_empty() {
            let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            tracing::info!(
                step = name,
                "the cached result is not reused: {}",
                why.join("; ")
            );
        }
        reasons.is_empty()
    }

    /// Stores a step's key inputs as its last key, so `tuna plan` can say what changed.
    fn remember_key(&self, name: &str, key: String, inputs: KeyInputs) -> Result<(), EngineError> {
        let last = LastKey {
            format: FORMAT_MAJOR,
            key,
            inputs,
        };
        Ok(self
            .eng
            .store
            .put_last_key(&self.run.workflow, name, &last)?)
    }

    fn wait_for_capacity(&mut self, name: &str, why: String, now: u64) -> Result<(), EngineError> {
        let since = *self.waiting_since.entry(name.to_string()).or_insert(now);
        if let Some(limit) = self.step(name).wait_for_capacity
            && now.saturating_sub(since) > limit.as_millis() as u64
        {
            let msg = format!(
                "{why} for longer than wait_for_capacity ({}s)",
                limit.as_secs()
            );
            self.waiting_since.remove(name);
            return self.fail(name, msg, RetryOn::Capacity, StepStatus::Failed);
        }
        let rec = self.recs.get_mut(name).expect("record");
        if rec.status != StepStatus::Waiting || rec.message.as_deref() != Some(why.as_str()) {
            rec.status = StepStatus::Waiting;
            rec.message = Some(why);
            self.save(name)?;
        }
        Ok(())
    }

    /// Records a new attempt as Launching (flushed by the caller before the launch).
    fn start_attempt(&mut self, name: &str, asg: Assignment) -> Result<Launch, EngineError> {
        self.waiting_since.remove(name);
        self.restore_upstream(name)?;
        let n = self.recs[name].attempt() + 1;
        let dir = self.eng.home.attempt_dir(&self.run.id, name, n);
        let (runner, runner_name, price_per_hour) = {
            let pool = self.eng.pool.lock().expect("pool");
            let r = pool.runner(asg.runner);
            (r.runner.clone(), r.name.clone(), r.price_per_hour)
        };
        let (job, preps) = match self.job_for(name, n, &dir, &asg) {
            Ok(j) => j,
            Err(e) => {
                self.eng.pool.lock().expect("pool").release(&asg);
                return Err(e);
            }
        };
        let now = now_ms();
        let rec = self.recs.get_mut(name).expect("record");
        rec.attempts.push(AttemptRecord {
            n,
            runner: runner_name,
            dir,
            started_at: now,
            ended_at: None,
            outcome: None,
            gpus: asg.gpus.clone(),
            price_per_hour,
        });
        rec.status = StepStatus::Launching;
        rec.handle = None;
        rec.message = None;
        rec.not_before = None;
        rec.started_at.get_or_insert(now);
        self.save(name)?;
        *self.tries.entry(name.to_string()).or_insert(0) += 1;
        self.assignments.insert(name.to_string(), asg);
        self.active += 1;
        Ok((runner, job, self.step(name).outputs.clone(), preps))
    }

    fn on_event(&mut self, ev: Event) -> Result<(), EngineError> {
        match ev {
            Event::Launched {
                step,
                attempt,
                handle,
            } => {
                let rec = self.recs.get_mut(&step).expect("record");
                if rec.attempt() != attempt || !rec.status.is_active() {
                    return Ok(());
                }
                rec.status = StepStatus::Running;
                rec.handle = Some(handle.clone());
                self.save(&step)?;
                if self.stop.is_some() {
                    let runner = self.runner_of(&step);
                    tokio::spawn(async move {
                        let _ = runner.cancel(&handle).await;
                    });
                }
            }
            Event::Finished {
                step,
                attempt,
                result,
                collected,
            } => {
                if self.recs[&step].attempt() != attempt {
                    return Ok(());
                }
                if let Some(asg) = self.assignments.remove(&step) {
                    self.eng.pool.lock().expect("pool").release(&asg);
                }
                self.active = self.active.saturating_sub(1);
                self.on_finished(&step, result, collected)?;
            }
        }
        Ok(())
    }

    fn runner_of(&self, step: &str) -> Arc<dyn tuna_runners::Runner> {
        let pool = self.eng.pool.lock().expect("pool");
        let idx = self.assignments.get(step).map_or(0, |a| a.runner);
        pool.runner(idx).runner.clone()
    }

    fn on_finished(
        &mut self,
        name: &str,
        result: Result<Outcome, String>,
        collected: Option<Result<Collected, String>>,
    ) -> Result<(), EngineError> {
        let now = now_ms();
        {
            let rec = self.recs.get_mut(name).expect("record");
            if let Some(a) = rec.attempts.last_mut() {
                a.ended_at = Some(now);
                a.outcome = result.as_ref().ok().cloned();
            }
        }
        let stderr = self.recs[name]
            .attempts
            .last()
            .map(|a| a.dir.join("stderr.log"));
        let see = stderr
            .map(|p| format!("; see {}", p.display()))
            .unwrap_or_default();
        match result {
            Ok(o) if o.success() => {
                match collected.unwrap_or_else(|| Err("outputs were not collected".into())) {
                    Ok(c) => match gate::check(&self.step(name).gate, &c.metrics) {
                        Ok(()) => self.pass(name, c)?,
                        Err(msg) => {
                            self.recs.get_mut(name).expect("record").metrics = c.metrics;
                            self.fail(name, msg, RetryOn::Failure, StepStatus::Failed)?
                        }
                    },
                    Err(msg) => self.fail(name, msg, RetryOn::Failure, StepStatus::Failed)?,
                }
            }
            Ok(Outcome::Cancelled) => {
                let rec = self.recs.get_mut(name).expect("record");
                rec.status = StepStatus::Cancelled;
                rec.message = Some("cancelled".into());
                rec.ended_at = Some(now);
                self.save(name)?;
            }
            Ok(Outcome::TimedOut) => {
                let t = self
                    .step(name)
                    .timeout
                    .map(|d| format!(" after {}s", d.as_secs()))
                    .unwrap_or_default();
                self.fail(
                    name,
                    format!("timed out{t}"),
                    RetryOn::Failure,
                    StepStatus::TimedOut,
                )?
            }
            Ok(Outcome::Exited { code }) => self.fail(
                name,
                format!("exited with code {code}{see}"),
                RetryOn::Failure,
                StepStatus::Failed,
            )?,
            Ok(Outcome::Signaled { signal }) => self.fail(
                name,
                format!("killed by signal {signal}{see}"),
                RetryOn::Failure,
                StepStatus::Failed,
            )?,
            Ok(Outcome::Lost { reason }) => {
                self.fail(name, reason, RetryOn::RunnerLost, StepStatus::Failed)?
            }
            Err(e) => self.fail(name, e, RetryOn::RunnerLost, StepStatus::Failed)?,
        }
        Ok(())
    }

    fn pass(&mut self, name: &str, c: Collected) -> Result<(), EngineError> {
        let rec = self.recs.get_mut(name).expect("record");
        rec.status = StepStatus::Passed;
        rec.outputs = c.outputs.clone();
        rec.locations = c.locations.clone();
        rec.outputs_dir = Some(c.outputs_dir);
        rec.metrics = c.metrics.clone();
        rec.message = None;
        rec.ended_at = Some(now_ms());
        let key = rec.cache_key.clone();
        self.save(name)?;
        if let Some(key) = key {
            if self.step(name).cache.enabled {
                self.eng.store.put_cache_entry(
                    &key,
                    &CacheEntry {
                        format: FORMAT_MAJOR,
                        outputs: c.outputs,
                        locations: c.locations,
                        metrics: c.metrics,
                        run: self.run.id.clone(),
                        created_at: now_ms(),
                    },
                )?;
            }
            if let Some(inputs) = self.keys.remove(name) {
                self.remember_key(name, key, inputs)?;
            }
        }
        Ok(())
    }

    /// A failed attempt: retried after backoff if the step allows it for this kind of failure,
    /// else final.
    fn fail(
        &mut self,
        name: &str,
        msg: String,
        class: RetryOn,
        status: StepStatus,
    ) -> Result<(), EngineError> {
        let retry = self.step(name).retry.clone();
        let tries = self.tries.get(name).copied().unwrap_or(0);
        let rec = self.recs.get_mut(name).expect("record");
        if self.stop.is_none() && tries >= 1 && tries < retry.attempts && retry.on.contains(&class)
        {
            let delay = retry.backoff.saturating_mul(1u32 << (tries - 1).min(16));
            rec.status = StepStatus::Waiting;
            rec.not_before = Some(now_ms() + delay.as_millis() as u64);
            let i = self.index[name];
            self.todo.insert(i);
            rec.message = Some(format!(
                "attempt {} {msg}; retrying in {}s",
                rec.attempt(),
                delay.as_secs_f64()
            ));
        } else {
            rec.status = status;
            rec.message = Some(msg);
            rec.ended_at = Some(now_ms());
        }
        self.save(name)
    }

    async fn on_control(&mut self, c: Control) {
        if self.stop.is_some() {
            return;
        }
        self.stop = Some(match c {
            Control::Cancel => RunStatus::Cancelled,
            Control::Interrupt => RunStatus::Interrupted,
        });
        for (name, rec) in &self.recs {
            if let (StepStatus::Running, Some(h)) = (rec.status, &rec.handle) {
                let runner = self.runner_of(name);
                let h = h.clone();
                tokio::spawn(async move {
                    let _ = runner.cancel(&h).await;
                });
            }
        }
    }

    /// Whether `name` is a service step (`model.serve`).
    fn is_service(&self, name: &str) -> bool {
        matches!(&self.step(name).action,
            crate::workflow::Action::Uses { kind, .. }
                if tuna_steps::find(kind).is_some_and(|k| k.is_service()))
    }

    /// Stops the servers the run's service steps started.
    fn stop_services(&self) {
        for (name, rec) in &self.recs {
            if let Some(dir) = rec.outputs_dir.as_deref().filter(|_| self.is_service(name))
                && super::services::stop(dir)
            {
                tracing::info!(step = %name, "stopped the server of service step");
            }
        }
    }

    fn next_timer(&self) -> Option<u64> {
        let waiting_capacity = self
            .recs
            .values()
            .any(|r| r.status == StepStatus::Waiting && r.not_before.is_none());
        let retry = self
            .recs
            .values()
            .filter(|r| r.status == StepStatus::Waiting)
            .filter_map(|r| r.not_before)
            .min();
        // A step waiting for capacity is re-placed whenever an event frees a slot; the timer
        // only enforces `wait_for_capacity` (checked once a second).
        let capacity = waiting_capacity.then(|| now_ms() + 1000);
        match (retry, capacity) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn finish(&mut self) -> Result<RunStatus, EngineError> {
        let status = if let Some(s) = self.stop {
            s
        } else if self.recs.values().all(|r| r.status.is_done()) {
            RunStatus::Passed
        } else {
            RunStatus::Failed
        };
        // An interrupted run is resumed later and its steps may still need the servers.
        if status != RunStatus::Interrupted {
            self.stop_services();
        }
        self.run.status = status;
        self.run.ended_at = Some(now_ms());
        self.eng.store.put_run(&self.run)?;
        self.eng.store.flush()?;
        let count = |s: StepStatus| self.recs.values().filter(|r| r.status == s).count();
        self.eng.reporter.report(&Progress::RunFinished {
            run: &self.run.id,
            status: run_status_str(status),
            passed: count(StepStatus::Passed),
            cached: count(StepStatus::Cached),
            failed: count(StepStatus::Failed) + count(StepStatus::TimedOut),
        });
        Ok(status)
    }
}

pub fn run_status_str(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Passed => "passed",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Interrupted => "interrupted",
    }
}

async fn sleep_until_ms(t: Option<u64>) {
    let now = now_ms();
    let wait = t.map_or(0, |t| t.saturating_sub(now));
    tokio::time::sleep(Duration::from_millis(wait)).await;
}
