//! Every key the loader accepts, per mapping. The JSON schema is tested against these lists.

pub(crate) const TOP: &[&str] = &[
    "name",
    "description",
    "params",
    "schedule",
    "budget",
    "leaderboard",
    "tracking",
    "secrets",
    "defaults",
    "steps",
];
pub(crate) const STEP: &[&str] = &[
    "needs",
    "run",
    "uses",
    "with",
    "inputs",
    "outputs",
    "env",
    "runs-on",
    "retry",
    "timeout",
    "cache",
    "gate",
    "wait_for_capacity",
    "secrets",
];
pub(crate) const DEFAULTS: &[&str] = &["retry", "timeout", "wait_for_capacity", "runs-on", "env"];
pub(crate) const RETRY: &[&str] = &["attempts", "backoff", "on"];
pub(crate) const CACHE: &[&str] = &["enabled", "per-runner"];
pub(crate) const SCHEDULE: &[&str] = &["cron", "timezone", "missed", "concurrency"];
pub(crate) const BUDGET: &[&str] = &["max_gpu_hours", "max_cost"];
pub(crate) const SELECTOR: &[&str] = &["gpu", "count", "memory"];
pub(crate) const SECRET: &[&str] = &["env", "file"];
pub(crate) const LEADERBOARD: &[&str] = &["step", "model", "metrics", "suite"];
pub(crate) const TRACKING: &[&str] = &["mlflow", "experiment", "max_artifact_size", "register_as"];
