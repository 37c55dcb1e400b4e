//! The records tuna keeps durably: one per run, one per (run, step), one per cache entry.
//!
//! Each record carries `format`; a store written by a newer major format is refused rather
//! than misread. Fields added since are optional (a record without `locations`, written
//! before outputs could stay on a runner, has all its outputs in the local store).
//! Timestamps are unix milliseconds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tuna_runners::{Handle, Outcome};

use crate::cache::KeyInputs;
use crate::cas::Digest;

/// Bump the major on an incompatible change of any record below.
pub const FORMAT_MAJOR: u32 = 1;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Passed,
    Failed,
    /// Stopped by `tuna cancel`; resumable.
    Cancelled,
    /// Stopped by a signal to tuna (Ctrl-C); resumable.
    Interrupted,
}

impl RunStatus {
    /// The word status, the API and the dashboard show.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Running)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: u32,
    pub id: String,
    pub workflow: String,
    /// The workflow file as it was when the run started: resume runs this text, not the file's
    /// current content.
    pub workflow_path: PathBuf,
    pub workflow_text: String,
    /// `-p` overrides (defaults come from the workflow text).
    pub params: BTreeMap<String, String>,
    pub status: RunStatus,
    pub jobs: usize,
    pub no_cache: bool,
    pub created_at: u64,
    pub ended_at: Option<u64>,
    /// Set by the daemon's scheduler for scheduled fires.
    pub scheduled_time: Option<String>,
}

#[cfg(test)]
impl RunRecord {
    /// A passed run `id` of workflow `workflow` at `path` with `text`, for tests.
    pub fn passed_for_test(id: &str, workflow: &str, path: PathBuf, text: &str) -> RunRecord {
        RunRecord {
            format: FORMAT_MAJOR,
            id: id.into(),
            workflow: workflow.into(),
            workflow_path: path,
            workflow_text: text.into(),
            params: BTreeMap::new(),
            status: RunStatus::Passed,
            jobs: 1,
            no_cache: false,
            created_at: 0,
            ended_at: None,
            scheduled_time: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    /// Waiting for runner capacity or for a retry's backoff.
    Waiting,
    Launching,
    Running,
    Passed,
    Cached,
    Failed,
    /// An upstream step failed.
    Skipped,
    Cancelled,
    TimedOut,
}

impl StepStatus {
    /// Passed or Cached: downstream steps may use its outputs.
    pub fn is_done(self) -> bool {
        matches!(self, StepStatus::Passed | StepStatus::Cached)
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Passed
                | StepStatus::Cached
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
                | StepStatus::TimedOut
        )
    }
    pub fn is_active(self) -> bool {
        matches!(self, StepStatus::Launching | StepStatus::Running)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Waiting => "waiting",
            StepStatus::Launching => "launching",
            StepStatus::Running => "running",
            StepStatus::Passed => "passed",
            StepStatus::Cached => "cached",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::TimedOut => "timed-out",
        }
    }
}

/// One try of a step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptRecord {
    pub n: u32,
    pub runner: String,
    pub dir: PathBuf,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub outcome: Option<Outcome>,
    /// The GPUs the attempt was given.
    #[serde(default)]
    pub gpus: Vec<tuna_runners::Gpu>,
    /// The runner's price per GPU-hour when the attempt started (for the cost ledger).
    #[serde(default)]
    pub price_per_hour: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub format: u32,
    pub run: String,
    pub step: String,
    pub status: StepStatus,
    /// Every attempt so far; the last is the current one.
    pub attempts: Vec<AttemptRecord>,
    /// The launched job's handle, stored before tuna waits on it.
    pub handle: Option<Handle>,
    pub cache_key: Option<String>,
    /// Declared output path → digest in the artifact store.
    pub outputs: BTreeMap<String, Digest>,
    /// Declared output path → where its content is kept (absent: the local artifact store).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub locations: BTreeMap<String, Location>,
    /// Where this run's copy of the outputs lives (an attempt's work folder, or where a cache
    /// hit was restored).
    pub outputs_dir: Option<PathBuf>,
    pub metrics: BTreeMap<String, f64>,
    /// Why it failed, was skipped or waits.
    pub message: Option<String>,
    /// Why it ran rather than reusing a stored result ("input `data.txt` changed", "never
    /// run"); empty for a cache hit and for steps not looked up yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Unix ms before which a retry must not start.
    pub not_before: Option<u64>,
    pub started_at: Option<u64>,
    pub ended_at: Option<u64>,
}

impl StepRecord {
    pub fn new(run: &str, step: &str) -> Self {
        StepRecord {
            format: FORMAT_MAJOR,
            run: run.to_string(),
            step: step.to_string(),
            status: StepStatus::Pending,
            attempts: Vec::new(),
            handle: None,
            cache_key: None,
            outputs: BTreeMap::new(),
            locations: BTreeMap::new(),
            outputs_dir: None,
            metrics: BTreeMap::new(),
            message: None,
            reasons: Vec::new(),
            not_before: None,
            started_at: None,
            ended_at: None,
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempts.last().map_or(0, |a| a.n)
    }
}

/// Where an output's content is kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "at", rename_all = "kebab-case")]
pub enum Location {
    /// In tuna's own artifact store, on this machine.
    #[default]
    Local,
    /// In the content-addressed folder of this runner, on its machine (a big output of a
    /// step that ran there).
    Runner { name: String },
}

impl Location {
    /// The location of `output` in a record's `locations`.
    pub fn of<'a>(locations: &'a BTreeMap<String, Location>, output: &str) -> &'a Location {
        static LOCAL: Location = Location::Local;
        locations.get(output).unwrap_or(&LOCAL)
    }

    /// The runner that keeps it, if not the local store.
    pub fn runner(&self) -> Option<&str> {
        match self {
            Location::Local => None,
            Location::Runner { name } => Some(name),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local => f.write_str("local"),
            Location::Runner { name } => write!(f, "runner `{name}`"),
        }
    }
}

/// What a cache key stands for: the outputs and metrics of the step that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub format: u32,
    pub outputs: BTreeMap<String, Digest>,
    /// Where each output is kept (absent: the local artifact store).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub locations: BTreeMap<String, Location>,
    pub metrics: BTreeMap<String, f64>,
    pub run: String,
    pub created_at: u64,
}

/// The inputs of a step's key the last time it ran or was looked up in a workflow, so that
/// `tuna plan` can say what changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastKey {
    pub format: u32,
    pub key: String,
    pub inputs: KeyInputs,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::{Location, StepRecord};

    /// A step record written before outputs could stay on a runner has no `locations`: all
    /// its outputs read as local.
    #[test]
    fn records_without_locations_read_as_local() {
        let mut rec = StepRecord::new("r1", "train");
        rec.outputs.insert(
            "model.txt".into(),
            "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
                .parse()
                .unwrap(),
        );
        let json = serde_json::to_value(&rec).unwrap();
        assert!(json.get("locations").is_none(), "{json}");
        let old: StepRecord = serde_json::from_value(json).unwrap();
        assert_eq!(Location::of(&old.locations, "model.txt"), &Location::Local);

        let mut kept = old.clone();
        kept.locations.insert(
            "model.txt".into(),
            Location::Runner {
                name: "a100-box".into(),
            },
        );
        let back: StepRecord =
            serde_json::from_str(&serde_json::to_string(&kept).unwrap()).unwrap();
        assert_eq!(
            Location::of(&back.locations, "model.txt").runner(),
            Some("a100-box")
        );
    }
}
