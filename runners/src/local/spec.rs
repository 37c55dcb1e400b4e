//! The launch spec: what the shim reads (from its standard input) to know what to run.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

    /// Reads the spec the launcher writes to the shim's standard input.
    pub fn read_from(input: impl io::Read) -> io::Result<LaunchSpec> {
        serde_json::from_reader(input).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(io::Error::other)
    }
}
