//! The launch spec: what the launcher sends the home's supervisor (read by the waiter it forks)
//! to know what to run.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Job;

/// The job plus the runner settings the waiter needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct LaunchSpec {
    #[serde(flatten)]
    pub job: Job,
    /// Time between SIGTERM and SIGKILL, in milliseconds.
    pub kill_grace_ms: u64,
    /// The environment the script starts from (plus the job's own `env`): the launcher's,
    /// since one supervisor serves every tuna process of the home.
    pub base_env: BTreeMap<String, String>,
}

impl LaunchSpec {
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    /// Reads the spec the launcher writes to the supervisor's socket.
    pub fn read_from(mut input: impl io::Read) -> io::Result<LaunchSpec> {
        // Read whole first: serde_json reads an unbuffered stream one byte per call.
        let mut bytes = Vec::with_capacity(4096);
        input.read_to_end(&mut bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(io::Error::other)
    }
}
