//! What `tuna status`, `tuna runs` and the control socket show of a run: one serializable view,
//! built from the store's records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use tuna_steps::StepProgress;

use super::attempt_files::AttemptFiles;
use super::ledger::Cost;
use crate::store::{RunRecord, StepRecord, StepStatus, Store, StoreError, now_ms};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunView {
    pub id: String,
    pub workflow: String,
    pub status: String,
    pub created_at: u64,
    pub ended_at: Option<u64>,
    pub duration_s: Option<f64>,
    pub params: BTreeMap<String, String>,
    /// GPU-hours and cost of every attempt so far.
    pub gpu_hours: f64,
    pub cost: f64,
    pub steps: Vec<StepView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepView {
    pub name: String,
    pub status: String,
    pub attempt: u32,
    pub runner: Option<String>,
    pub message: Option<String>,
    /// Why it ran rather than reusing a stored result (empty for a cache hit).
    #[serde(default)]
    pub reasons: Vec<String>,
    pub metrics: BTreeMap<String, f64>,
    pub outputs: BTreeMap<String, String>,
    /// Output → the runner that keeps it on its machine (outputs in the local store are not
    /// listed).
    #[serde(default)]
    pub kept_on: BTreeMap<String, String>,
    pub started_at: Option<u64>,
    pub ended_at: Option<u64>,
    pub duration_s: Option<f64>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    /// GPU-hours and cost of the step's attempts (wall × GPUs × price_per_hour).
    pub gpu_hours: f64,
    pub cost: f64,
    /// How far a running step has come, from its attempt's `$TUNA_PROGRESS` file (only while
    /// it runs, and only for a step on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<StepProgress>,
}

/// A short line per run for `tuna runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub workflow: String,
    pub status: String,
    pub created_at: u64,
    pub duration_s: Option<f64>,
    pub steps: usize,
    pub passed: usize,
    pub cached: usize,
    pub failed: usize,
}

fn secs(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    Some(b?.saturating_sub(a?) as f64 / 1000.0)
}

impl RunView {
    pub fn build(run: &RunRecord, mut steps: Vec<StepRecord>) -> RunView {
        let order: Vec<String> = crate::dag::load_str(&run.workflow_path, &run.workflow_text)
            .map(|d| d.topo_order().to_vec())
            .unwrap_or_default();
        let pos = |s: &str| order.iter().position(|o| o == s).unwrap_or(usize::MAX);
        steps.sort_by(|a, b| pos(&a.step).cmp(&pos(&b.step)).then(a.step.cmp(&b.step)));
        let total = Cost::of_run(&steps, now_ms());
        RunView {
            id: run.id.clone(),
            workflow: run.workflow.clone(),
            status: run.status.as_str().to_string(),
            created_at: run.created_at,
            ended_at: run.ended_at,
            duration_s: secs(Some(run.created_at), run.ended_at),
            params: run.params.clone(),
            gpu_hours: total.gpu_hours,
            cost: total.cost,
            steps: steps.iter().map(StepView::build).collect(),
        }
    }

    pub fn load(store: &Store, run: &str) -> Result<Option<RunView>, StoreError> {
        match store.run(run)? {
            Some(r) => Ok(Some(RunView::build(&r, store.steps(run)?))),
            None => Ok(None),
        }
    }
}

impl StepView {
    fn build(r: &StepRecord) -> StepView {
        let last = r.attempts.last();
        let cost = Cost::of_step(r, now_ms());
        StepView {
            name: r.step.clone(),
            status: r.status.as_str().to_string(),
            attempt: r.attempt(),
            runner: last.map(|a| a.runner.clone()),
            message: r.message.clone(),
            reasons: r.reasons.clone(),
            metrics: r.metrics.clone(),
            outputs: r
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            kept_on: r
                .locations
                .iter()
                .filter_map(|(k, l)| Some((k.clone(), l.runner()?.to_string())))
                .collect(),
            started_at: r.started_at,
            ended_at: r.ended_at,
            duration_s: secs(r.started_at, r.ended_at),
            stdout: last.map(|a| a.dir.join("stdout.log")),
            stderr: last.map(|a| a.dir.join("stderr.log")),
            gpu_hours: cost.gpu_hours,
            cost: cost.cost,
            progress: last
                .filter(|_| r.status == StepStatus::Running)
                .and_then(|a| StepProgress::read(&AttemptFiles::progress_of(&a.dir))),
        }
    }
}

impl RunSummary {
    pub fn list(store: &Store) -> Result<Vec<RunSummary>, StoreError> {
        let mut out = Vec::new();
        for run in store.runs()? {
            let steps = store.steps(&run.id)?;
            let count = |s: &str| steps.iter().filter(|r| r.status.as_str() == s).count();
            out.push(RunSummary {
                id: run.id.clone(),
                workflow: run.workflow.clone(),
                status: run.status.as_str().to_string(),
                created_at: run.created_at,
                duration_s: secs(Some(run.created_at), run.ended_at),
                steps: steps.len(),
                passed: count("passed"),
                cached: count("cached"),
                failed: count("failed") + count("timed-out"),
            });
        }
        Ok(out)
    }
}

/// Seconds as people read them: `4.2s`, `3m07s`, `2h05m`.
pub fn fmt_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
    }
}
