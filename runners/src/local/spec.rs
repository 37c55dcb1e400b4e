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
    #[serde(default)]
    pub base_env: BTreeMap<String, String>,
    /// Sent instead of `base_env` when it is the one of the previous launch on the same
    /// connection (a kept waiter's next launch).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub same_env: bool,
}

/// A launch on a kept waiter, written from borrowed parts: the job without its base
/// environment, which the waiter has from the connection's first launch.
#[derive(Serialize)]
pub(crate) struct NextLaunch<'a> {
    #[serde(flatten)]
    pub job: &'a Job,
    pub kill_grace_ms: u64,
    pub same_env: bool,
}

impl NextLaunch<'_> {
    /// One line, as [`LaunchSpec::to_bytes`].
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        json_line(self)
    }
}

impl LaunchSpec {
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    /// Reads the next spec a launcher sends on its connection: one line of JSON. `None` when
    /// the connection ended first (its launcher is done with this waiter).
    pub fn read_line_from(input: &mut impl io::BufRead) -> io::Result<Option<LaunchSpec>> {
        let mut line = Vec::with_capacity(4096);
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            // Its launcher died mid-line: nothing to run.
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The spec as the launcher sends it: one line (JSON escapes every newline in a string).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        json_line(self)
    }
}

/// `value` as one line of JSON.
fn json_line(value: &impl Serialize) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}
