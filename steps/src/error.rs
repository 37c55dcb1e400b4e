//! The error a built-in step reports: what a user must change, or that this build cannot run
//! the kind.

/// Why a built-in step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The `with:` mapping (as rendered for this run) is not acceptable.
    #[error("with.{key}: {message}")]
    With { key: String, message: String },
    /// The step's environment is not the one tuna gives (run outside `tuna`?).
    #[error("{0}")]
    Context(String),
    /// The kind needs libtorch and this program was built without the `torch` feature.
    #[error(
        "step kind `{0}` needs libtorch: run it with `tuna-ml` (cargo build -p tuna-steps --features torch --bins)"
    )]
    NeedsTorch(String),
    /// Reading the step's input failed at a place a user can fix.
    #[error("{0}")]
    Input(String),
    /// Any other failure, with what was being done.
    #[error("{0}")]
    Failed(String),
}

impl StepError {
    pub fn with(key: impl Into<String>, message: impl Into<String>) -> Self {
        StepError::With {
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn io(what: impl std::fmt::Display, e: std::io::Error) -> Self {
        StepError::Failed(format!("{what}: {e}"))
    }
}

impl From<crate::settings::SettingError> for StepError {
    fn from(e: crate::settings::SettingError) -> Self {
        StepError::With {
            key: e.key,
            message: e.message,
        }
    }
}
