//! One scheduling turn: in topological order, each ready step is skipped, served from the
//! cache, placed on a runner within the budget, or left waiting for capacity.

use super::*;

impl Dispatcher<'_> {
    /// One pass over the steps in topological order: skip what cannot run, restore cache hits,
    /// place and record what can start. Returns the launches to make after the flush.
    pub(super) fn schedule(&mut self) -> Result<Vec<Launch>, EngineError> {
        let mut launches = Vec::new();
        if self.stop.is_some() {
            return Ok(launches);
        }
        let now = now_ms();
        // A pass can make steps ready (a cache hit, a skip): go again until one adds nothing.
        let mut seen = std::collections::BTreeSet::new();
        loop {
            // While every slot is taken, the steps that wait for one only are not looked at;
            // else only as many of them as there are free slots (the first in topological
            // order): a wide fan-out parks hundreds, and one frees a slot at a time.
            let free = self.run.jobs.saturating_sub(self.active);
            let todo: Vec<usize> = self
                .walk
                .to_look_at(free)
                .filter(|&i| seen.insert(i))
                .collect();
            if todo.is_empty() {
                break;
            }
            self.schedule_pass(todo, now, &mut launches)?;
        }
        Ok(launches)
    }

    pub(super) fn schedule_pass(
        &mut self,
        todo: Vec<usize>,
        now: u64,
        launches: &mut Vec<Launch>,
    ) -> Result<(), EngineError> {
        for i in todo {
            if self.active >= self.run.jobs && self.walk.is_parked(i) {
                continue;
            }
            let order = self.dag.topo_order();
            let name = &order[i];
            let verdict = {
                let (recs, order) = (&self.recs, self.dag.topo_order());
                self.walk.verdict(i, |j| recs[&order[j]].status)
            };
            match verdict {
                Verdict::Gone => {
                    self.walk.leave(i);
                    continue;
                }
                Verdict::Skip(bad) => {
                    let bad = order[bad].clone();
                    let name = name.clone();
                    let rec = self.recs.get_mut(&name).expect("record");
                    rec.status = StepStatus::Skipped;
                    rec.message = Some(format!("upstream step `{bad}` did not pass"));
                    rec.ended_at = Some(now);
                    self.save(&name)?;
                    self.walk.leave(i);
                    continue;
                }
                Verdict::Wait => continue,
                Verdict::Ready => {}
            }
            if self.recs[name].not_before.is_some_and(|t| t > now) {
                continue;
            }
            let name = name.clone();
            if self.try_cache(&name)? {
                self.walk.leave(i);
                continue;
            }
            if self.active >= self.run.jobs {
                self.walk.park(i);
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
                        self.walk.leave(i);
                        continue;
                    }
                    // Secrets are read at each launch, so a failed one is this step's
                    // failure (said without its value), not the run's.
                    let secrets = match super::super::secrets::read(
                        self.dag.workflow(),
                        self.step(&name),
                        &self.eng.step_env,
                    ) {
                        Ok(s) => s,
                        Err(why) => {
                            self.eng.pool.lock().expect("pool").release(&asg);
                            self.fail(&name, why, RetryOn::Failure, StepStatus::Failed)?;
                            self.walk.leave(i);
                            continue;
                        }
                    };
                    launches.push(self.start_attempt(&name, asg, &secrets)?);
                    self.walk.leave(i);
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
    pub(super) fn within_budget(
        &self,
        name: &str,
        asg: &Assignment,
        now: u64,
    ) -> Result<(), String> {
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
    pub(super) fn try_cache(&mut self, name: &str) -> Result<bool, EngineError> {
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
        let question = Question {
            workflow: &self.dag.workflow().name,
            step: name,
            inputs: &inputs,
            key: &key,
            cache_enabled: step.cache.enabled,
            no_cache: self.run.no_cache,
        };
        let answer = freshness(&self.eng.store, &question, |e| self.outputs_there(name, e))?;
        if let Freshness::Fresh(entry) = answer {
            let rec = self.recs.get_mut(name).expect("record");
            rec.reasons.clear();
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
        let rec = self.recs.get_mut(name).expect("record");
        rec.cache_key = Some(key);
        if let Freshness::Dirty(reasons) = answer {
            rec.reasons = reasons.iter().map(ToString::to_string).collect();
        }
        self.keys.insert(name.to_string(), inputs);
        Ok(false)
    }

    /// What of a cache entry's outputs is not where it records them (kept ones are looked
    /// for on their runner's machine, which blocks: this thread is marked as blocking then).
    pub(super) fn outputs_there(&self, name: &str, entry: &CacheEntry) -> Vec<DirtyReason> {
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
        reasons
    }

    /// Stores a step's key inputs as its last key, so `tuna plan` can say what changed.
    pub(super) fn remember_key(
        &self,
        name: &str,
        key: String,
        inputs: KeyInputs,
    ) -> Result<(), EngineError> {
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

    pub(super) fn wait_for_capacity(
        &mut self,
        name: &str,
        why: String,
        now: u64,
    ) -> Result<(), EngineError> {
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
}
