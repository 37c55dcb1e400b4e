//! The files of an attempt folder that the local runner and its waiters share. Claims and exit
//! records are not among them: they go to the run's journal (see [`super::journal`]).

use std::fs;
use std::io;
use std::path::Path;

/// The outcome, as a Ray job's driver writes it (a local attempt's is in the run's journal).
pub const EXIT: &str = "exit.json";
/// Marker written by `cancel` before it signals the waiter.
pub const CANCEL: &str = "cancel";
/// The script's standard output (appended).
pub const STDOUT_LOG: &str = "stdout.log";
/// The script's standard error (appended).
pub const STDERR_LOG: &str = "stderr.log";
/// The waiter's own diagnostics, created only when it has something to say.
pub const SHIM_LOG: &str = "shim.log";
/// The script's working directory.
pub const WORK_DIR: &str = "work";

/// Opens `dir/name` for appending, made now; `dir` too when it is not there yet (the attempt
/// folder of a step without one of its own is made only when something goes in it).
pub(crate) fn open_log(dir: &Path, name: &str) -> io::Result<fs::File> {
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            open()
        }
        other => other,
    }
}

/// Reads a file written in one `write` after its exclusive create, waiting (briefly, bounded)
/// while it is still empty because its writer is between the two.
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
