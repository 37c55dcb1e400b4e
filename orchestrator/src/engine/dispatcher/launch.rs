//! Turning a placed step into a launch: its attempt record, its job (with what must be
//! brought from other runners first) and the flush before it.

use super::*;

impl Dispatcher<'_> {
    /// The job of one attempt, and how the upstream outputs kept on runners reach it: linked
    /// in place on the runner that keeps them, streamed to another ssh runner, or brought
    /// into the local store for a step on this machine.
    pub(super) fn job_for(
        &self,
        name: &str,
        attempt: u32,
        dir: &std::path::Path,
        asg: &Assignment,
        secrets: &BTreeMap<String, String>,
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
                    EngineError::Runner(format!(
                        "output {out} of step `{need}` is kept on runner `{keeper}`, which is no \
                         longer in the runner inventory; put it back, or run `{need}` again"
                    ))
                })?;
                let listing = artifacts::listing(&self.eng.cas, digest).map_err(|e| {
                    EngineError::Artifacts(format!("output {out} of step `{need}`: {e}"))
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
                        EngineError::Artifacts(format!(
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
            secrets,
        };
        let step = self.step(name);
        if remote.is_none() && !has_own_folder(step) && !self.shared_made.get() {
            // The run's folders shared by the steps without one of their own: made once.
            let files = AttemptFiles::new(dir, false);
            files
                .make_shared()
                .map_err(|e| EngineError::Invalid(format!("{}: {e}", files.work.display())))?;
            self.shared_made.set(true);
        }
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

    /// Records a new attempt as Launching (flushed by the caller before the launch; on a runner
    /// that records its launches itself, stored with the step's next change).
    pub(super) fn start_attempt(
        &mut self,
        name: &str,
        asg: Assignment,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Launch, EngineError> {
        self.waiting_since.remove(name);
        self.premade.remove(&self.index[name]);
        self.restore_upstream(name)?;
        let n = self.recs[name].attempt() + 1;
        let dir = self.eng.home.attempt_dir(&self.run.id, name, n);
        let (runner, runner_name, price_per_hour) = {
            let pool = self.eng.pool.lock().expect("pool");
            let r = pool.runner(asg.runner);
            (r.runner.clone(), r.name.clone(), r.price_per_hour)
        };
        let (job, preps) = match self.job_for(name, n, &dir, &asg, secrets) {
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
        if runner.records_launches() {
            // The runner's journal records the launch: the store hears of it with the step's
            // next change (see the module's note), so a short step's record is written once.
            self.report(name);
        } else {
            self.save(name)?;
        }
        *self.tries.entry(name.to_string()).or_insert(0) += 1;
        self.assignments.insert(name.to_string(), asg);
        self.active += 1;
        Ok((runner, job, self.step(name).outputs.clone(), preps))
    }
}
