//! The `StepKind` trait: what every built-in kind answers (its `with:` checks, outputs,
//! path keys) and how it runs; the registry of kinds is in `kinds/`.

pub use crate::context::Metrics;
use crate::context::StepContext;
use crate::error::StepError;

/// A problem in a step's `with:` mapping, at a dotted key path (`lora.r`; empty = the mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithProblem {
    pub path: String,
    pub message: String,
}

impl WithProblem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        WithProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl WithProblem {
    /// The key as a message names it: `` `with.lora.r` ``, or `` `with` `` for the mapping.
    pub fn key(&self) -> String {
        if self.path.is_empty() {
            "`with`".to_string()
        } else {
            format!("`with.{}`", self.path)
        }
    }

    /// The problem a settings parser reported, if any (for `StepKind::check_with`).
    pub fn of<T>(parsed: Result<T, StepError>) -> Vec<WithProblem> {
        match parsed {
            Ok(_) => Vec::new(),
            Err(StepError::With { key, message }) => vec![WithProblem::new(key, message)],
            Err(e) => vec![WithProblem::new("", e.to_string())],
        }
    }
}

/// A built-in step kind.
pub trait StepKind: Sync {
    /// The name used in `uses:`.
    fn name(&self) -> &'static str;
    /// Bump to invalidate every cached result of this kind.
    fn version(&self) -> u32;
    /// One line for `tuna kinds` and error help.
    fn summary(&self) -> &'static str;
    /// Checks a `with:` mapping before anything runs. Values written as `${{ params.X }}` arrive
    /// typed (a number stays a number); step outputs arrive as placeholder paths.
    fn check_with(&self, with: &serde_json::Value) -> Vec<WithProblem>;
    /// The outputs the step has when it declares none (`outputs:`).
    fn default_outputs(&self, with: &serde_json::Value) -> Vec<String>;
    /// The `with` keys whose values name files or folders to read: like `inputs:`, their
    /// content enters the cache key, and they travel to the runner.
    fn path_keys(&self) -> &'static [&'static str];
    /// Whether running it needs libtorch (the `tuna-ml` program).
    fn needs_torch(&self) -> bool {
        false
    }
    /// Whether a step of it starts something that outlives it for the steps after it (a
    /// server): such steps are never cached, and tuna stops what they started when the run
    /// ends (see `model.serve`).
    fn is_service(&self) -> bool {
        false
    }
    /// Runs the step in this process (current folder = the step's work folder).
    fn execute(&self, ctx: &StepContext) -> Result<Metrics, StepError>;
}
