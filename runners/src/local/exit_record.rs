//! How an attempt's script ended: the record a local waiter appends to the run's journal, and
//! the `exit.json` a Ray job's driver writes.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::layout;
use crate::Outcome;

/// The record of one finished attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitRecord {
    pub outcome: Outcome,
    /// When the shim took the attempt, unix milliseconds.
    pub started_ms: u64,
    /// When the script's process group was gone, unix milliseconds.
    pub ended_ms: u64,
    /// The script's pid, if it was started.
    pub child_pid: Option<u32>,
}

impl ExitRecord {
    /// Reads the record of the attempt in `attempt_dir`; `None` while there is none.
    pub fn read(attempt_dir: &Path) -> io::Result<Option<ExitRecord>> {
        let Some(bytes) = layout::read_settled(attempt_dir, layout::EXIT)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", layout::EXIT))
        })
    }
}
