//! `exit.json`: how the script ended, written by the shim.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::layout;
use crate::Outcome;

/// The shim's record of one finished attempt.
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

    pub(crate) fn write(&self, attempt_dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        if layout::create_exclusive(attempt_dir, layout::EXIT, &bytes)? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the attempt already has an exit record",
            ))
        }
    }
}
