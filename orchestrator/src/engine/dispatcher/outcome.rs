//! What the dispatcher does with executor events: a step launched, running, or finished —
//! gates, retries with back-off, passes and failures.

use super::*;

impl Dispatcher<'_> {
    pub(super) fn on_event(&mut self, ev: Event) -> Result<(), EngineError> {
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
                // Saved once the events at hand are handled: a short step's end comes with
                // it, and one record says both.
                self.unsaved.insert(step.clone());
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

    pub(super) fn runner_of(&self, step: &str) -> Arc<dyn tuna_runners::Runner> {
        let pool = self.eng.pool.lock().expect("pool");
        let idx = self.assignments.get(step).map_or(0, |a| a.runner);
        pool.runner(idx).runner.clone()
    }

    pub(super) fn on_finished(
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
        let attempt_dir = self.recs[name].attempts.last().map(|a| a.dir.clone());
        let succeeded =
            matches!(&result, Ok(o) if o.success()) && matches!(&collected, Some(Ok(_)));
        let cancelled = matches!(&result, Ok(Outcome::Cancelled));
        if !succeeded
            && !cancelled
            && let Some(msg) = attempt_dir
                .as_deref()
                .and_then(super::super::disk::full_disk_failure)
        {
            // The real cause, whatever the script's exit or a truncated exit record said.
            return self.fail(name, msg, RetryOn::Failure, StepStatus::Failed);
        }
        let stderr = attempt_dir.map(|d| d.join("stderr.log"));
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
            Ok(Outcome::NoCapacity { reason }) => {
                self.fail(name, reason, RetryOn::Capacity, StepStatus::Failed)?
            }
            Ok(Outcome::Lost { reason }) => {
                self.fail(name, reason, RetryOn::RunnerLost, StepStatus::Failed)?
            }
            Err(e) => self.fail(name, e, RetryOn::RunnerLost, StepStatus::Failed)?,
        }
        Ok(())
    }

    pub(super) fn pass(&mut self, name: &str, c: Collected) -> Result<(), EngineError> {
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
    pub(super) fn fail(
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
            self.walk.revisit(i);
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
}
