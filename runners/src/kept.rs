//! Outputs kept on a runner's machine: a runner whose machine is not the orchestrator's keeps
//! big outputs in a content-addressed folder there instead of bringing them back. It lists what
//! it kept in `kept.json` in the local attempt folder, where the orchestrator collects outputs;
//! the same listing tells a runner which stored blobs to place into an attempt folder
//! ([`Stage::stored`](crate::Stage::stored)).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One kept output: its files (blobs in the runner's store, named by blake3) and, for a folder,
/// its empty subfolders.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeptOutput {
    /// Whether the output is a folder (then `files` are relative to it); a file output has one
    /// entry with an empty path.
    pub dir: bool,
    /// Sorted by path.
    pub files: Vec<KeptFile>,
    /// Folders with nothing in them, relative to the output, sorted.
    #[serde(default)]
    pub empty_dirs: Vec<String>,
}

/// One file of a [`KeptOutput`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeptFile {
    /// Relative to the output, `/`-separated; empty when the output is this file.
    pub path: String,
    /// The blake3 of its content, 64 lower-case hex digits: its name in the runner's store.
    pub hex: String,
    pub size: u64,
    pub executable: bool,
}

impl KeptOutput {
    /// All the bytes of the output.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What a runner kept of one attempt's outputs: `kept.json` in the local attempt folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeptOutputs {
    /// The runner whose store holds them.
    pub runner: String,
    /// Declared output (as the step declares it, folders end in `/`) → what was kept.
    pub outputs: BTreeMap<String, KeptOutput>,
}

impl KeptOutputs {
    /// Its file name in the attempt folder.
    pub const FILE: &'static str = "kept.json";

    /// Reads the attempt folder's listing; `None` when nothing was kept.
    pub fn read(attempt_dir: &Path) -> io::Result<Option<KeptOutputs>> {
        let path = attempt_dir.join(Self::FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the listing into the attempt folder (whole, by rename).
    pub fn write(&self, attempt_dir: &Path) -> io::Result<()> {
        let path = attempt_dir.join(Self::FILE);
        let tmp = attempt_dir.join(format!(".{}.tmp", Self::FILE));
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &path)
    }
}
