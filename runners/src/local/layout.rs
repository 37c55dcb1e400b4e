//! The files of an attempt folder that the local runner and its shim share, and how they are
//! written: exclusively, first writer wins, in one `write` (no temp file: every inode an
//! attempt creates costs, and a step's overhead is mostly inode creation).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

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

/// Creates `dir/name` holding `bytes` unless it exists. Returns whether this call created it.
/// The content is written with one `write` right after the exclusive create, so a reader sees
/// the file empty for at most that instant (see [`read_settled`]), never half-written.
pub(crate) fn create_exclusive(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<bool> {
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(dir.join(name));
    match file {
        Ok(mut f) => {
            f.write_all(bytes)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a file made by [`create_exclusive`], waiting (briefly, bounded) while it is still
/// empty because its writer is between the create and the write.
pub(crate) fn read_settled(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    for _ in 0..500 {
        match read_optional(dir, name)? {
            Some(bytes) if bytes.is_empty() => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            other => return Ok(other),
        }
    }
    read_optional(dir, name)
}

/// Reads `dir/name`, `None` when it does not exist.
pub(crate) fn read_optional(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
