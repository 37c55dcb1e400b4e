//! [`ProjectError`]: why a submission's project files were refused, or could not be stored.
//! Each message names the file (and the limit it broke).

use std::path::PathBuf;

use super::limits::human_size;
use crate::cas::CasError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("project file `{path}` {reason}")]
    BadPath { path: String, reason: String },
    #[error(
        "project file `{path}` is {} ({size} bytes), over the daemon's per-file limit of {} \
         (tuna serve --max-file-size)", human_size(*.size), human_size(*.limit)
    )]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error(
        "the project's files come to {}, over the daemon's per-submission limit of {} \
         (tuna serve --max-submission-size)", human_size(*.total), human_size(*.limit)
    )]
    TotalTooLarge { total: u64, limit: u64 },
    #[error(
        "the project has {count} files, over the daemon's limit of {limit} (tuna serve --max-files)"
    )]
    TooManyFiles { count: usize, limit: usize },
    #[error(
        "the workflow file is {} ({size} bytes), over the limit of {}",
        human_size(*.size), human_size(super::limits::MAX_WORKFLOW)
    )]
    WorkflowTooLarge { size: u64 },
    #[error(
        "an upload is larger than the daemon's per-file limit of {} (tuna serve --max-file-size)",
        human_size(*.limit)
    )]
    UploadTooLarge { limit: u64 },
    #[error("the upload for {name} holds content whose digest is {got}; it was not stored")]
    WrongContent { name: String, got: String },
    #[error(
        "project file `{path}` ({digest}) is not in the daemon's store: upload it first \
         (PUT /api/v1/blobs/{digest})"
    )]
    NotUploaded { path: String, digest: String },
    #[error("project file `{path}` is said to be {declared} bytes, but {digest} is {actual}")]
    WrongSize {
        path: String,
        digest: String,
        declared: u64,
        actual: u64,
    },
    #[error(transparent)]
    Cas(#[from] CasError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ProjectError {
    pub(crate) fn bad(path: &str, reason: impl Into<String>) -> ProjectError {
        ProjectError::BadPath {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ProjectError {
        ProjectError::Io {
            path: path.into(),
            source,
        }
    }

    /// A limit was broken (HTTP 413), rather than something refused (422) or broken (500).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            ProjectError::FileTooLarge { .. }
                | ProjectError::TotalTooLarge { .. }
                | ProjectError::TooManyFiles { .. }
                | ProjectError::UploadTooLarge { .. }
                | ProjectError::WorkflowTooLarge { .. }
        )
    }

    /// Something the daemon could not do (HTTP 500), rather than a refusal.
    pub fn is_internal(&self) -> bool {
        matches!(self, ProjectError::Cas(_) | ProjectError::Io { .. })
    }
}
