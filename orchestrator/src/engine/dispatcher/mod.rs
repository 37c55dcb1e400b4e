//! The dispatcher: owns all state of one run while it is driven, and `select!`s over executor
//! events, retry timers and control messages.
//!
//! Every state change is written to the store, and the store flushed, before the action that
//! follows it (a launch, or the end of the run): one flush per launching turn of the loop
//! covers all the changes since the last one. A step found Launching or Running (after a
//! crash) is adopted by launching the same attempt again: the runner's launch is idempotent
//! per attempt, so a command never runs twice in one attempt. Launches on a runner that
//! records them durably itself (the local runner's journal) need no flush before them, nor a
//! record of their own: a step whose records were lost with a crash resumes at an attempt that
//! ran already, and adopts it. Such a step's record is written when it is seen running (after
//! the events at hand: a short step's end comes with it) and when it ends.

mod adopt;
mod end;
mod launch;
mod outcome;
mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tuna_runners::{Outcome, Resources};

use super::artifacts::{self, Prep};
use super::attempt_files::{AttemptFiles, has_own_folder};
use super::engine::{Engine, EngineError};
use super::events::{Collected, Control, Event};
use super::executor;
use super::freshness::{Freshness, Question, freshness};
use super::gate;
use super::job::{JobContext, build_job, merged_params};
use super::ledger::{Cost, check_budget};
use super::pool::{Assignment, Placement};
use super::progress::Progress;
use super::walk::{Verdict, Walk};
use crate::cache::{DirtyReason, KeyInputs, RUN_ID, SCHEDULED_TIME, key_inputs};
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
    /// Steps whose record changed and is saved after the events at hand (see `on_event`).
    unsaved: std::collections::BTreeSet<String>,
    /// Parked steps whose next attempt folder was made while the dispatcher had nothing else
    /// to do (topological index → that attempt), so their launch does not wait on it.
    premade: HashMap<usize, u32>,
    /// Per topological index: whether the step gets a folder of its own (only those are
    /// premade; see `attempt_files`).
    own_folder: Vec<bool>,
    /// Whether any step does (else nothing is ever premade).
    any_own_folder: bool,
    /// Whether the run's folders shared by the other steps were made.
    shared_made: std::cell::Cell<bool>,
    /// The walk over the DAG: the steps to look at when scheduling (Pending or Waiting, every
    /// upstream step final: the scan is over the frontier, not the whole DAG).
    walk: Walk,
    /// Step name → topological index.
    index: HashMap<String, usize>,
    stop: Option<RunStatus>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl<'e> Dispatcher<'e> {
    /// Loads a run (new or resumed) from the store; `dag`, when given, is its workflow as
    /// loaded from the text stored with it.
    pub fn load(
        eng: &'e Engine,
        run_id: &str,
        dag: Option<Dag>,
    ) -> Result<Dispatcher<'e>, EngineError> {
        let run = eng
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::NoSuchRun(run_id.to_string()))?;
        let dag = match dag {
            Some(dag) => dag,
            None => crate::dag::load_str(&run.workflow_path, &run.workflow_text).map_err(|e| {
                EngineError::Invalid(format!(
                    "the workflow stored with run `{run_id}` no longer loads:\n{}",
                    e.render_plain()
                ))
            })?,
        };
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
            let service = end::is_service_step(&dag.workflow().steps[name]);
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
        let walk = Walk::new(&dag, |i| recs[&dag.topo_order()[i]].status);
        let index = dag
            .topo_order()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let own_folder: Vec<bool> = dag
            .topo_order()
            .iter()
            .map(|n| has_own_folder(&dag.workflow().steps[n]))
            .collect();
        let any_own_folder = own_folder.contains(&true);
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
            unsaved: Default::default(),
            premade: HashMap::new(),
            own_folder,
            any_own_folder,
            shared_made: Default::default(),
            walk,
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
            // Durable before the action that follows: a turn that launches nothing needs no
            // flush (a Running record with its handle, say, is flushed with the next launch or
            // the run's end, and by sled's own flusher within half a second; lost, it is found
            // again by launching the same attempt, which is idempotent). Nor does a turn whose
            // launches all go to runners that record them durably themselves (the local
            // runner's journal): a step whose records were lost with a crash is resumed at an
            // attempt it launched already, and launching that attempt again adopts it.
            if launches
                .iter()
                .any(|(runner, ..)| !runner.records_launches())
            {
                self.eng.store.flush()?;
            }
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
            let premake = self.next_to_premake();
            tokio::select! {
                // Control first (it is rare), then events; the folder of a step to launch
                // soon is made only when nothing else is ready.
                biased;
                Some(c) = ctl_rx.recv() => self.on_control(c).await,
                Some(ev) = self.rx.recv() => {
                    self.on_event(ev)?;
                    while let Ok(ev) = self.rx.try_recv() {
                        self.on_event(ev)?;
                    }
                    self.save_unsaved()?;
                }
                _ = sleep_until_ms(timer), if timer.is_some() => {}
                _ = std::future::ready(()), if premake.is_some() => {
                    if let Some((i, attempt, dir)) = premake {
                        self.premade.insert(i, attempt);
                        // A folder that cannot be made now is left to the launch, which
                        // says why.
                        let _ = std::fs::create_dir_all(dir.join("work"));
                    }
                }
            }
        }
        self.finish()
    }

    /// The parked step (waiting for a slot only) whose next attempt folder to make now, while
    /// nothing else is ready: the first in topological order without one, when fewer than one
    /// per slot are made ahead. With its index, that attempt and its folder.
    fn next_to_premake(&self) -> Option<(usize, u32, PathBuf)> {
        // A premade step that left the walk without starting (it failed to be placed) no
        // longer counts.
        let ahead = self
            .premade
            .keys()
            .filter(|&&i| self.walk.is_parked(i))
            .count();
        if self.stop.is_some() || ahead >= self.run.jobs || !self.any_own_folder {
            return None;
        }
        let order = self.dag.topo_order();
        let i = self
            .walk
            .parked()
            .find(|&i| self.own_folder[i] && !self.premade.contains_key(&i))?;
        let attempt = self.recs[&order[i]].attempt() + 1;
        Some((
            i,
            attempt,
            self.eng.home.attempt_dir(&self.run.id, &order[i], attempt),
        ))
    }

    /// The workflow the run follows.
    pub fn workflow(&self) -> &crate::workflow::Workflow {
        self.dag.workflow()
    }

    fn requeue(&mut self, name: &str) {
        self.walk.revisit(self.index[name]);
    }

    fn all_final(&self) -> bool {
        self.recs.values().all(|r| r.status.is_final())
    }

    fn step(&self, name: &str) -> &Step {
        &self.dag.workflow().steps[name]
    }

    /// Saves the records left for after the events at hand.
    fn save_unsaved(&mut self) -> Result<(), EngineError> {
        while let Some(name) = self.unsaved.pop_first() {
            self.save(&name)?;
        }
        Ok(())
    }

    fn save(&mut self, name: &str) -> Result<(), EngineError> {
        self.unsaved.remove(name);
        let rec = &self.recs[name];
        self.eng.store.put_step(rec)?;
        if rec.status.is_final() {
            let (i, recs, order) = (self.index[name], &self.recs, self.dag.topo_order());
            self.walk.finished(i, |j| recs[&order[j]].status);
        }
        self.report(name);
        Ok(())
    }

    /// Tells the reporter the step's state.
    fn report(&self, name: &str) {
        let rec = &self.recs[name];
        self.eng.reporter.report(&Progress::Step {
            run: &self.run.id,
            step: name,
            status: rec.status,
            attempt: rec.attempt(),
            runner: rec.attempts.last().map(|a| a.runner.as_str()),
            message: rec.message.as_deref(),
            dir: rec.attempts.last().map(|a| a.dir.as_path()),
        });
    }
}

async fn sleep_until_ms(t: Option<u64>) {
    let now = now_ms();
    let wait = t.map_or(0, |t| t.saturating_sub(now));
    tokio::time::sleep(Duration::from_millis(wait)).await;
}
