//! The end of a run: cancel and interrupt, the timer for retries and capacity waits, the servers
//! of service steps, and the final status.

use super::*;

impl Dispatcher<'_> {
    pub(super) async fn on_control(&mut self, c: Control) {
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
    pub(super) fn is_service(&self, name: &str) -> bool {
        is_service_step(self.step(name))
    }

    /// Stops the servers the run's service steps started.
    pub(super) fn stop_services(&self) {
        for (name, rec) in &self.recs {
            if let Some(dir) = rec.outputs_dir.as_deref().filter(|_| self.is_service(name))
                && crate::engine::services::stop(dir)
            {
                tracing::info!(step = %name, "stopped the server of service step");
            }
        }
    }

    pub(super) fn next_timer(&self) -> Option<u64> {
        // Waiting steps are all on the walk's frontier: no need to look at every record on
        // every turn of the loop (that was quadratic in the run's size). Steps parked for a
        // slot are looked at again when one frees, not on a timer.
        let order = self.dag.topo_order();
        let waiting = || {
            self.walk
                .to_look_at(0)
                .map(|i| &self.recs[&order[i]])
                .filter(|r| r.status == StepStatus::Waiting)
        };
        let waiting_capacity = waiting().any(|r| r.not_before.is_none());
        let retry = waiting().filter_map(|r| r.not_before).min();
        // A step waiting for capacity is re-placed whenever an event frees a slot; the timer
        // only enforces `wait_for_capacity` (checked once a second).
        let capacity = waiting_capacity.then(|| now_ms() + 1000);
        match (retry, capacity) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn finish(&mut self) -> Result<RunStatus, EngineError> {
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
            status: status.as_str(),
            passed: count(StepStatus::Passed),
            cached: count(StepStatus::Cached),
            failed: count(StepStatus::Failed) + count(StepStatus::TimedOut),
        });
        Ok(status)
    }
}

/// Whether a step's kind is a service (it leaves a server running for the steps after it).
pub(super) fn is_service_step(step: &Step) -> bool {
    matches!(&step.action,
        crate::workflow::Action::Uses { kind, .. }
            if tuna_steps::find(kind).is_some_and(|k| k.is_service()))
}
