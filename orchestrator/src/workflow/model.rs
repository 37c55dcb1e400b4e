//! The validated workflow: what the rest of tuna consumes once a file has loaded cleanly.
//!
//! Values that may hold `${{ … }}` references stay as [`Template`]s; the engine renders them per
//! run. Everything here is plain data: the loader (which keeps YAML spans for diagnostics)
//! builds it, and `Workflow::seal` (in `dag/`) turns it into the sealed graph.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::template::Template;

/// A workflow file that passed validation.
#[derive(Debug, Clone, Serialize)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// The file it came from (absolute), and its folder: relative `inputs` resolve against it.
    pub path: PathBuf,
    pub project_dir: PathBuf,
    /// Parameter defaults, as strings (YAML scalars keep their source text: `2e-4` stays `2e-4`).
    pub params: IndexMap<String, String>,
    pub schedule: Option<Schedule>,
    pub budget: Option<Budget>,
    /// Which steps' metrics are leaderboard entries, one per evaluated model (empty without
    /// `leaderboard:`). A run records them when it ends, locally or in `tuna serve`.
    pub leaderboard: Vec<Leaderboard>,
    /// Where runs are exported for experiment tracking (`tracking:`); the environment's
    /// `MLFLOW_TRACKING_URI` / `MLFLOW_EXPERIMENT_NAME` win over it.
    pub tracking: Option<Tracking>,
    /// Where each secret's value comes from (`secrets:`); values are read at run time only.
    pub secrets: IndexMap<String, SecretSource>,
    /// Steps in file order.
    pub steps: IndexMap<String, Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    /// Explicit `needs` plus the steps its `${{ steps.X… }}` references imply, deduplicated,
    /// in first-mention order.
    pub needs: Vec<String>,
    pub action: Action,
    /// Files/folders (relative to the project dir) whose content enters the cache key.
    pub inputs: Vec<String>,
    pub env: BTreeMap<String, Template>,
    /// Ordered alternatives; empty = any runner (the default local one).
    pub runs_on: Vec<RunsOn>,
    pub retry: Retry,
    pub timeout: Option<Duration>,
    pub cache: CachePolicy,
    /// Declared output paths relative to `$TUNA_OUTPUTS`; a trailing `/` marks a folder.
    pub outputs: Vec<String>,
    /// Metric comparisons, e.g. `loss_last < loss_first`, already parsed.
    pub gate: Vec<Gate>,
    /// How long the step may wait for a free matching runner slot before it fails.
    pub wait_for_capacity: Option<Duration>,
    /// The secrets it gets, as environment variables of these names.
    pub secrets: Vec<String>,
}

/// Where a secret's value is read when a run starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    /// An environment variable of the tuna process that runs the workflow.
    Env(String),
    /// A file (absolute, or under `~/`); its content less one trailing newline.
    File(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `run:` a shell command (bash -euo pipefail -c).
    Run(Template),
    /// `uses:` a built-in step kind with its `with:` mapping (string leaves may be templates).
    Uses {
        kind: String,
        with: serde_yaml::Value,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum RunsOn {
    /// A runner by name.
    Runner(String),
    /// A selector over the inventory.
    Selector(Selector),
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Selector {
    /// GPU type, lower-case (`a100`); None = no GPU needed.
    pub gpu: Option<String>,
    /// How many GPUs (default 1 when `gpu` is set).
    pub count: u32,
    /// Minimum memory per GPU, bytes.
    pub memory: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Retry {
    /// Total tries, >= 1 (1 = no retry).
    pub attempts: u32,
    /// Delay before the 2nd try; doubled for each later one.
    pub backoff: Duration,
    pub on: Vec<RetryOn>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            backoff: Duration::from_secs(0),
            on: vec![RetryOn::Failure],
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// The command exited non-zero, timed out, or failed its gate.
    Failure,
    /// No runner had capacity within `wait_for_capacity`.
    Capacity,
    /// The runner stopped answering.
    RunnerLost,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CachePolicy {
    pub enabled: bool,
    /// When true, the runner's name (not just its class) enters the key.
    pub per_runner: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: true,
            per_runner: false,
        }
    }
}

/// `metric OP value` where value is a number or another metric.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gate {
    /// The source text, for messages.
    pub text: String,
    pub left: GateOperand,
    pub op: GateOp,
    pub right: GateOperand,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum GateOperand {
    Metric(String),
    Number(f64),
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum GateOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Schedule {
    /// The 5-field crontab line as written.
    pub cron: String,
    /// IANA name; "UTC" by default.
    pub timezone: String,
    pub missed: MissedPolicy,
    pub concurrency: ConcurrencyPolicy,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MissedPolicy {
    Skip,
    Latest,
    All,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ConcurrencyPolicy {
    Forbid,
    Allow,
    Replace,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Budget {
    pub max_gpu_hours: Option<f64>,
    pub max_cost: Option<f64>,
}

/// One `leaderboard:` entry: when its step passed, a run adds one row per metric, keyed by
/// model, suite and night.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Leaderboard {
    pub step: String,
    /// The model's name, usually `${{ params.model_name }}`.
    pub model: Template,
    pub metrics: Vec<String>,
    /// Default: the workflow's name.
    pub suite: Option<String>,
}

/// The `tracking:` block: an MLflow tracking server and the experiment runs go to.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Tracking {
    /// `mlflow:` the server's base URI (`http://` or `https://`).
    pub mlflow: Option<String>,
    /// `experiment:` the experiment's name (default: the workflow's name).
    pub experiment: Option<String>,
    /// `max_artifact_size:` outputs up to this size are uploaded as artifacts; bigger ones are
    /// recorded as a tag (default 16 MiB).
    pub max_artifact_size: Option<u64>,
    /// `register_as:` a `finetune` step's registered model name (default `WORKFLOW-STEP`).
    pub register_as: std::collections::BTreeMap<String, String>,
}
