//! [`CasError`]: what can go wrong storing or restoring artifacts.

use std::io;
use std::path::{Path, PathBuf};

use super::Digest;

#[derive(Debug, thiserror::Error)]
pub enum CasError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not in the artifact store (it may have been garbage-collected)")]
    Missing(Digest),
    #[error(
        "the stored blob {digest} ({}) was damaged: {reason}; it was removed from the store, so the step that made it runs again next time",
        path.display()
    )]
    Damaged {
        digest: Digest,
        path: PathBuf,
        reason: String,
    },
    #[error("the stored tree {digest} is damaged: {reason}")]
    BadTree { digest: Digest, reason: String },
    #[error("{}: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error("{} changed while it was being stored; store it again once nothing writes to it", path.display())]
    Changed { path: PathBuf },
    #[error("{from} sent content for {expected} that hashes to {got}; it was not stored")]
    WrongContent {
        from: String,
        expected: Digest,
        got: Digest,
    },
}

/// Attaches the path an I/O error is about.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, CasError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, CasError> {
        self.map_err(|source| CasError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
