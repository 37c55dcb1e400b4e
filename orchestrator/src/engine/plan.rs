//! `tuna plan`: for every step, hit or miss and why, without running anything.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::artifacts;
use super::engine::{Engine, EngineError};
use super::freshness::{Freshness, Question, freshness};
use super::job::merged_params;
use crate::cache::DirtyReason;
use crate::cache::{RUN_ID, SCHEDULED_TIME, key_inputs};
use crate::cas::Digest;
use crate::dag::Dag;

#[derive(Debug, Clone, Serialize)]
pub struct PlanRow {
    pub step: String,
    pub hit: bool,
    pub key: Option<String>,
    /// Empty on a hit.
    pub reasons: Vec<String>,
}

impl Engine {
    pub fn plan(
        &self,
        dag: &Dag,
        overrides: &BTreeMap<String, String>,
        no_cache: bool,
    ) -> Result<Vec<PlanRow>, EngineError> {
        let wf = dag.workflow();
        let mut params = merged_params(wf, overrides).map_err(EngineError::Invalid)?;
        // A step that names its run's id or time reruns in every run.
        params.insert(RUN_ID.into(), "(the next run's)".into());
        params.insert(SCHEDULED_TIME.into(), "(the next run's)".into());
        // Outputs of steps that would hit, so their dependents' keys can be computed.
        let mut known: HashMap<String, BTreeMap<String, Digest>> = HashMap::new();
        let mut rows = Vec::new();
        // Runners that did not answer a check: asked once per plan.
        let mut unreachable = HashMap::new();
        for name in dag.topo_order() {
            let step = &wf.steps[name];
            if let Some(up) = dag.needs(name).iter().find(|n| !known.contains_key(*n)) {
                rows.push(PlanRow {
                    step: name.clone(),
                    hit: false,
                    key: None,
                    reasons: vec![DirtyReason::UpstreamRuns(up.clone()).to_string()],
                });
                continue;
            }
            let runner = self
                .pool
                .lock()
                .expect("pool")
                .cache_identity(&step.runs_on, step.cache.per_runner);
            let inputs = key_inputs(wf, step, &params, |s| known.get(s), &runner)
                .map_err(EngineError::Invalid)?;
            let key = inputs.key();
            let question = Question {
                workflow: &wf.name,
                step: name,
                inputs: &inputs,
                key: &key,
                cache_enabled: step.cache.enabled,
                no_cache,
            };
            let answer = freshness(&self.store, &question, |e| {
                artifacts::check(
                    &self.cas,
                    &|n: &str| self.runner_named(n),
                    &e.outputs,
                    &e.locations,
                    &mut unreachable,
                )
            })?;
            let (entry, reasons) = match answer {
                Freshness::Fresh(e) => (Some(e), Vec::new()),
                Freshness::Dirty(r) => (None, r),
            };
            let hit = reasons.is_empty();
            if hit {
                known.insert(name.clone(), entry.map(|e| e.outputs).unwrap_or_default());
            }
            rows.push(PlanRow {
                step: name.clone(),
                hit,
                key: Some(key),
                reasons: reasons.iter().map(ToString::to_string).collect(),
            });
        }
        Ok(rows)
    }
}
