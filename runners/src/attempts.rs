//! The attempt folders a runner keeps on its machine (`WORKDIR/runs/RUN/STEP/ATTEMPT`), as
//! garbage collection reaches them: listing them and deleting those no record needs.
//!
//! All calls block (they talk to another machine): call them from blocking threads.

use std::time::Duration;

use crate::BlobError;

/// One attempt folder on a runner's machine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteAttempt {
    pub run: String,
    pub step: String,
    /// The folder's name: the attempt number, as written.
    pub attempt: String,
}

impl RemoteAttempt {
    /// `RUN/STEP/ATTEMPT`, relative to the runner's `runs/` folder.
    pub fn rel(&self) -> String {
        format!("{}/{}/{}", self.run, self.step, self.attempt)
    }
}

/// The attempt folders of a runner whose machine is not the orchestrator's.
pub trait AttemptFolders: Send + Sync {
    /// Every attempt folder there. Gives up with [`BlobError::Unreachable`] when the machine
    /// does not answer within about `timeout`.
    fn attempts(&self, timeout: Duration) -> Result<Vec<RemoteAttempt>, BlobError>;
    /// Deletes the attempt folders `attempts` with everything in them (and step and run
    /// folders left empty); returns how many were there. Only for garbage collection: the
    /// caller makes sure no job runs in them.
    fn remove_attempts(
        &self,
        attempts: &[RemoteAttempt],
        timeout: Duration,
    ) -> Result<usize, BlobError>;
}
