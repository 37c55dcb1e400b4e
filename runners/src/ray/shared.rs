//! The shared artifact folder every node mounts: blobs named by their blake3 under `cas/` (as
//! the local CAS names them) and the attempt folders under `runs/RUN/STEP/ATTEMPT`. Both sides
//! use it: this machine puts a job's inputs in and takes its outputs out, the wrapper on the
//! node places the inputs and puts the outputs in. Every copy is hashed on the way; a blob is
//! written to a temporary name and renamed into place only when its content matches its name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the wrapper needs to run an attempt, written by the runner as `job.json` in the
/// attempt folder before the job is submitted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobSpec {
    /// The bash script (`bash -euo pipefail -c SCRIPT`).
    pub script: String,
    /// Files to place, relative to the attempt folder.
    pub files: Vec<SpecFile>,
    /// Folders to make (inputs that are folders, also empty ones).
    pub dirs: Vec<String>,
    /// Declared outputs, relative to `work/` (folders end in `/`).
    pub outputs: Vec<String>,
}

/// One file of a [`JobSpec`]: a blob and where it goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpecFile {
    pub dest: String,
    pub hex: String,
    pub executable: bool,
}

/// The shared folder.
#[derive(Debug, Clone)]
pub struct Shared {
    pub root: PathBuf,
}

impl Shared {
    pub fn new(root: impl Into<PathBuf>) -> Shared {
        Shared { root: root.into() }
    }

    fn cas(&self) -> PathBuf {
        self.root.join("cas")
    }

    /// Where blob `hex` is.
    pub fn blob(&self, hex: &str) -> PathBuf {
        self.cas().join(hex)
    }

    /// The attempt folder of `(run, step, attempt)`.
    pub fn attempt_dir(&self, run: &str, step: &str, attempt: u32) -> PathBuf {
        self.root
            .join("runs")
            .join(run)
            .join(step)
            .join(attempt.to_string())
    }

    /// Puts the file at `source` into the store unless blob `hex` is there; checks the
    /// content against `hex` on the way.
    pub fn put_known(&self, source: &Path, hex: &str) -> io::Result<()> {
        if self.blob(hex).exists() {
            return Ok(());
        }
        let got = self.put(source)?;
        if got != hex {
            return Err(io::Error::other(format!(
                "{} changed while it was staged (blake3 {got}, expected {hex})",
                source.display()
            )));
        }
        Ok(())
    }

    /// Puts the file at `source` into the store; its blake3.
    pub fn put(&self, source: &Path) -> io::Result<String> {
        let cas = self.cas();
        fs::create_dir_all(&cas)?;
        let tmp = temp_in(&cas);
        let hex = copy_hashing(source, &tmp)?;
        let blob = self.blob(&hex);
        if blob.exists() {
            let _ = fs::remove_file(&tmp);
        } else {
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o444))?;
            fs::rename(&tmp, &blob)?;
        }
        Ok(hex)
    }

    /// Copies blob `hex` to `dest` (parents made, temp name then rename), checking its content.
    pub fn place(&self, hex: &str, dest: &Path, executable: bool) -> io::Result<()> {
        // A blob that is a link is not followed: it could name any file of this machine.
        if !fs::symlink_metadata(self.blob(hex))?.file_type().is_file() {
            return Err(io::Error::other(format!(
                "blob {hex} in {} is not a regular file",
                self.cas().display()
            )));
        }
        let parent = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent)?;
        let tmp = temp_in(parent);
        let got = copy_hashing(&self.blob(hex), &tmp)?;
        if got != hex {
            let _ = fs::remove_file(&tmp);
            return Err(io::Error::other(format!(
                "blob {hex} in {} is damaged (its content hashes to {got})",
                self.cas().display()
            )));
        }
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, dest)
    }
}

/// A fresh name in `dir` for a file being written.
fn temp_in(dir: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        ".tuna-part-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Copies `from` to `to`, hashing the bytes; their blake3.
fn copy_hashing(from: &Path, to: &Path) -> io::Result<String> {
    let mut src = File::open(from)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", from.display())))?;
    let mut dst =
        File::create(to).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", to.display())))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])?;
    }
    dst.sync_all()?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_go_in_by_content_and_come_out_checked() {
        let t = tempfile::tempdir().unwrap();
        let s = Shared::new(t.path().join("shared"));
        let src = t.path().join("a.txt");
        fs::write(&src, b"hello").unwrap();
        let hex = s.put(&src).unwrap();
        assert_eq!(hex, blake3::hash(b"hello").to_hex().to_string());
        s.put_known(&src, &hex).unwrap();
        let out = t.path().join("o/x/a.txt");
        s.place(&hex, &out, true).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"hello");
        assert_ne!(fs::metadata(&out).unwrap().permissions().mode() & 0o111, 0);
        // A damaged blob is refused, not placed.
        let blob = s.blob(&hex);
        fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&blob, b"evil").unwrap();
        let err = s.place(&hex, &t.path().join("o/b.txt"), false).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert!(!t.path().join("o/b.txt").exists());
        // A blob replaced by a link is not followed.
        fs::remove_file(&blob).unwrap();
        std::os::unix::fs::symlink(&src, &blob).unwrap();
        let err = s.place(&hex, &t.path().join("o/c.txt"), false).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
