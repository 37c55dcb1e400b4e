//! The content-addressed store a runner keeps on its machine, as the orchestrator reaches it:
//! asking which blobs are there, and moving blobs in and out one stream at a time (never a
//! whole file in memory). Blobs are named by the 64 hex digits of their blake3.
//!
//! All calls block (they talk to another machine): call them from blocking threads.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The machine did not answer (in time).
    #[error("{0}")]
    Unreachable(String),
    /// The blob is not in the store.
    #[error("blob {hex} is not in the store of runner `{runner}`")]
    Missing { runner: String, hex: String },
    /// What arrived does not hash to the name it was sent under.
    #[error("blob {hex} arrived with blake3 {got}: corrupted on the way or in the source store")]
    Corrupt { hex: String, got: String },
    #[error("{0}")]
    Other(String),
}

/// A runner's store on its machine.
pub trait BlobStore: Send + Sync {
    /// The blobs of `hexes` the store lacks. Gives up with [`BlobError::Unreachable`] when the
    /// machine does not answer within about `timeout` (it does not wait for a down host).
    fn missing(&self, hexes: &[String], timeout: Duration) -> Result<Vec<String>, BlobError>;
    /// A session of its own for moving blobs, so that a long transfer does not hold up the
    /// runner's jobs.
    fn session(&self) -> Result<Box<dyn BlobSession>, BlobError>;
    /// Every blob in the store with its size (names that are not 64 hex digits, such as
    /// transfers in progress, are left out). Gives up like [`BlobStore::missing`].
    fn list(&self, timeout: Duration) -> Result<Vec<StoredBlob>, BlobError>;
    /// Deletes the blobs `hexes` from the store (those already gone are skipped). Only for
    /// garbage collection: the caller makes sure no job uses them.
    fn remove(&self, hexes: &[String], timeout: Duration) -> Result<Removed, BlobError>;
}

/// One blob of a [`BlobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub hex: String,
    pub size: u64,
}

/// What a [`BlobStore::remove`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub blobs: u64,
    /// The sizes of the deleted names (a blob still hard-linked elsewhere on the machine
    /// frees its space only once that link goes too).
    pub bytes: u64,
}

/// One open session to a [`BlobStore`].
pub trait BlobSession: Send {
    /// Reads the blob `hex`, streaming.
    fn open(&mut self, hex: &str) -> Result<Box<dyn Read + Send + '_>, BlobError>;
    /// Stores what `source` yields as blob `hex` (read-only; executable if asked), hashing it
    /// on the way: content that does not hash to `hex` is refused ([`BlobError::Corrupt`]) and
    /// never lands under that name. A blob already there is kept and `source` is not read.
    /// Returns the bytes written.
    fn put(&mut self, hex: &str, executable: bool, source: &mut dyn Read)
    -> Result<u64, BlobError>;
    /// Whether the store has the blob `hex`.
    fn has(&mut self, hex: &str) -> Result<bool, BlobError>;
}

/// Streams `reader` into `dest` (through a temp file beside it), refusing content whose
/// blake3 is not `hex`.
pub fn write_verified(
    reader: &mut dyn Read,
    dest: &Path,
    hex: &str,
    executable: bool,
) -> Result<u64, String> {
    let at = |e: std::io::Error| format!("{}: {e}", dest.display());
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(at)?;
    }
    let tmp = dest.with_file_name(format!(
        ".{}.tuna-pull-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(at)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading blob {hex}: {e}")),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(at)?;
            total += n as u64;
        }
        let got = hasher.finalize().to_hex();
        if got.as_str() != hex {
            return Err(format!(
                "{} arrived with blake3 {got}, not {hex}: corrupted on the way or at its source",
                dest.display()
            ));
        }
        let mode = if executable { 0o755 } else { 0o644 };
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(at)?;
        std::fs::rename(&tmp, dest).map_err(at)?;
        Ok(total)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
