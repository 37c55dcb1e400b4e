//! `job.json`: what the shim reads to know what to run.

use std::io;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::layout;
use crate::Job;

/// The job plus the runner settings the shim needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct LaunchSpec {
    #[serde(flatten)]
    pub job: Job,
    /// Time between SIGTERM and SIGKILL, in milliseconds.
    pub kill_grace_ms: u64,
}

impl LaunchSpec {
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    /// Writes `job.json` into the attempt folder unless one is there already (a relaunch of
    /// the same attempt keeps what the first launch asked for).
    pub fn write_if_absent(&self, dir: &Path) -> io::Result<()> {
        if dir.join(layout::JOB).exists() {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        layout::write_atomic(dir, layout::JOB, &bytes)
    }

    pub fn read(dir: &Path) -> io::Result<LaunchSpec> {
        let bytes = std::fs::read(dir.join(layout::JOB))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
