//! Adoption after a crash: steps found Launching or Running are launched again as the same
//! attempt (the runner attaches), and the outputs of finished upstream steps are put back in
//! place for the steps still to run.

use super::*;

impl Dispatcher<'_> {
    /// Steps found Launching or Running: launch the same attempt again, which adopts it.
    pub(super) fn adopt(&mut self) -> Result<(), EngineError> {
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
                    // The attempt runs already (its shim keeps the env it started with); a
                    // secret unreadable now leaves a not-yet-started attempt without it, and
                    // that attempt fails visibly.
                    let secrets = super::super::secrets::read(
                        self.dag.workflow(),
                        self.step(&name),
                        &self.eng.step_env,
                    )
                    .unwrap_or_default();
                    let (job, preps) = self.job_for(&name, att.n, &att.dir, &asg, &secrets)?;
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
    pub(super) fn restore_upstream(&mut self, name: &str) -> Result<(), EngineError> {
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
                    EngineError::Artifacts(format!("restoring output `{out}` of `{need}`: {e}"))
                })?;
            }
            let rec = self.recs.get_mut(&need).expect("record");
            rec.outputs_dir = Some(dir);
            self.eng.store.put_step(rec)?;
        }
        Ok(())
    }
}
