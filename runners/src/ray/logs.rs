//! Live logs: Ray returns a job's whole driver log on each `GET …/logs`; the bytes past what
//! the local attempt folder's `stdout.log` holds are appended to it (`tuna logs -f` follows
//! that file). tuna's own notes about the job (waiting for capacity, stopped at the timeout)
//! go to `stderr.log`, so the byte count of `stdout.log` stays Ray's.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

/// Appends the part of `log` that `local_dir/stdout.log` lacks.
pub(crate) fn append_new(local_dir: &Path, log: &str) -> io::Result<()> {
    let path = local_dir.join("stdout.log");
    let have = std::fs::metadata(&path).map_or(0, |m| m.len()) as usize;
    let bytes = log.as_bytes();
    if bytes.len() <= have {
        return Ok(());
    }
    let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
    f.write_all(&bytes[have..])
}

/// One line of tuna's own about the job, into `stderr.log`.
pub(crate) fn note(local_dir: &Path, line: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(local_dir.join("stderr.log"))?;
    writeln!(f, "tuna: {line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_bytes_are_appended() {
        let t = tempfile::tempdir().unwrap();
        append_new(t.path(), "one\n").unwrap();
        append_new(t.path(), "one\n").unwrap();
        append_new(t.path(), "one\ntwo\n").unwrap();
        let s = std::fs::read_to_string(t.path().join("stdout.log")).unwrap();
        assert_eq!(s, "one\ntwo\n");
    }
}
