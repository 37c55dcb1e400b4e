//! The one error type of the ML core: every failure names the file, key or line a user can fix.

use std::path::PathBuf;

/// What went wrong loading a model, reading data, or training.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// The model folder lacks a file or holds an unreadable one.
    #[error("model folder {dir}: {message}")]
    ModelFolder { dir: PathBuf, message: String },
    /// `config.json` is malformed: a missing key or a value of the wrong type.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// `config.json` names an architecture this build cannot run.
    #[error("{path}: unsupported architecture `{found}` (supported: {supported})")]
    UnsupportedArchitecture {
        path: PathBuf,
        found: String,
        supported: String,
    },
    /// A weight is missing or has the wrong shape.
    #[error("model folder {dir}: weight `{name}`: {message}")]
    Weight {
        dir: PathBuf,
        name: String,
        message: String,
    },
    /// A line of a JSONL data file is malformed.
    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// `tokenizer.json` is missing or unusable.
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// A fine-tuning setting is out of range.
    #[error("setting `{key}`: {message}")]
    Setting { key: String, message: String },
    /// A saved adapter cannot be read or does not fit the model.
    #[error("adapter {path}: {message}")]
    Adapter { path: PathBuf, message: String },
    /// A checkpoint cannot be written or read back.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// File I/O, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An error raised by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The run was asked to stop; checkpoints written so far remain.
    #[error("stopped on request after step {step}")]
    Cancelled { step: u64 },
}

impl MlError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        MlError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<crate::settings::SettingError> for MlError {
    fn from(e: crate::settings::SettingError) -> Self {
        MlError::Setting {
            key: e.key,
            message: e.message,
        }
    }
}

/// Result alias of the ML core.
pub type MlResult<T> = Result<T, MlError>;
