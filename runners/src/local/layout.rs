//! The files of an attempt folder that the local runner and its shim share, and the two ways
//! they write them: atomically (temp file + rename) and exclusively (first writer wins).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The resolved job the shim runs (written by `launch`, read by the shim).
pub const JOB: &str = "job.json";
/// The shim that owns the attempt: its pid and start time. Created exclusively.
pub const CLAIM: &str = "claim";
/// The outcome, written atomically by the shim when the script has ended.
pub const EXIT: &str = "exit.json";
/// Marker written by `cancel` before it signals the shim.
pub const CANCEL: &str = "cancel";
/// The script's standard output (appended).
pub const STDOUT_LOG: &str = "stdout.log";
/// The script's standard error (appended).
pub const STDERR_LOG: &str = "stderr.log";
/// The shim's own diagnostics, created only when it has something to say.
pub const SHIM_LOG: &str = "shim.log";
/// The script's working directory.
pub const WORK_DIR: &str = "work";

/// Writes `dir/name` so that readers see either nothing (or the old content) or all of `bytes`.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(dir, name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Creates `dir/name` holding `bytes` unless it exists. Returns whether this call created it.
/// The content appears together with the name (written to a temp file, then hard-linked), so
/// whoever finds the file finds it complete.
pub(crate) fn create_exclusive(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<bool> {
    let tmp = temp_path(dir, name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    let linked = fs::hard_link(&tmp, dir.join(name));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads `dir/name`, `None` when it does not exist.
pub(crate) fn read_optional(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A name next to `dir/name` that no other writer, in this process or another, uses now.
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}
