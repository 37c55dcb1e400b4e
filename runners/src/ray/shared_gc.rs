//! The shared folder as garbage collection reaches it (this machine mounts it too): its blobs
//! as a [`BlobStore`] and its attempt folders as [`AttemptFolders`]. Every output of a Ray
//! step comes back into the local CAS, so nothing there is the only copy of an output: `tuna
//! gc` removes the blobs no record keeps there (all of them, for a shared folder) and the
//! attempt folders of dropped runs and older attempts.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::shared::Shared;
use crate::{
    AttemptFolders, BlobError, BlobSession, BlobStore, RemoteAttempt, Removed, StoredBlob,
};

fn io_error(at: &Path, e: std::io::Error) -> BlobError {
    BlobError::Other(format!("{}: {e}", at.display()))
}

fn is_blob_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The names of the folders directly under `dir` (none when it is not there).
fn folders(dir: &Path) -> Result<Vec<String>, BlobError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    Ok(entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

impl BlobStore for Shared {
    fn missing(&self, hexes: &[String], _timeout: Duration) -> Result<Vec<String>, BlobError> {
        Ok(hexes
            .iter()
            .filter(|h| !self.blob(h).is_file())
            .cloned()
            .collect())
    }

    fn session(&self) -> Result<Box<dyn BlobSession>, BlobError> {
        Ok(Box::new(SharedSession(self.clone())))
    }

    fn list(&self, _timeout: Duration) -> Result<Vec<StoredBlob>, BlobError> {
        let cas = self.root.join("cas");
        let entries = match fs::read_dir(&cas) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&cas, e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if is_blob_name(&name) && meta.is_file() {
                out.push(StoredBlob {
                    hex: name,
                    size: meta.len(),
                });
            }
        }
        Ok(out)
    }

    fn remove(&self, hexes: &[String], _timeout: Duration) -> Result<Removed, BlobError> {
        let mut removed = Removed::default();
        for hex in hexes.iter().filter(|h| is_blob_name(h)) {
            let path = self.blob(hex);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            match fs::remove_file(&path) {
                Ok(()) => {
                    removed.blobs += 1;
                    removed.bytes += meta.len();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Ok(removed)
    }
}

/// Blobs in and out of the shared folder (a local path: no connection to hold).
struct SharedSession(Shared);

impl BlobSession for SharedSession {
    fn open(&mut self, hex: &str) -> Result<Box<dyn Read + Send + '_>, BlobError> {
        let path = self.0.blob(hex);
        match fs::File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::Other(format!(
                "blob {hex} is not in the shared folder {}",
                self.0.root.display()
            ))),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn put(
        &mut self,
        hex: &str,
        executable: bool,
        source: &mut dyn Read,
    ) -> Result<u64, BlobError> {
        let path = self.0.blob(hex);
        if path.is_file() {
            return Ok(0);
        }
        crate::write_verified(source, &path, hex, executable).map_err(BlobError::Other)
    }

    fn has(&mut self, hex: &str) -> Result<bool, BlobError> {
        Ok(self.0.blob(hex).is_file())
    }
}

impl AttemptFolders for Shared {
    fn attempts(&self, _timeout: Duration) -> Result<Vec<RemoteAttempt>, BlobError> {
        let runs = self.root.join("runs");
        let mut out = Vec::new();
        for run in folders(&runs)? {
            for step in folders(&runs.join(&run))? {
                for attempt in folders(&runs.join(&run).join(&step))? {
                    out.push(RemoteAttempt {
                        run: run.clone(),
                        step: step.clone(),
                        attempt,
                    });
                }
            }
        }
        Ok(out)
    }

    fn remove_attempts(
        &self,
        attempts: &[RemoteAttempt],
        _timeout: Duration,
    ) -> Result<usize, BlobError> {
        let runs = self.root.join("runs");
        let mut removed = 0;
        for a in attempts {
            // Names come from records and listings; one that would leave `runs/` is skipped.
            let parts = [&a.run, &a.step, &a.attempt];
            if parts
                .iter()
                .any(|p| p.is_empty() || p.contains('/') || *p == ".." || *p == ".")
            {
                continue;
            }
            let dir = runs.join(&a.run).join(&a.step).join(&a.attempt);
            match fs::remove_dir_all(&dir) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&dir, e)),
            }
            // The step and run folders go too once empty.
            let _ = fs::remove_dir(runs.join(&a.run).join(&a.step));
            let _ = fs::remove_dir(runs.join(&a.run));
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_and_attempt_folders_are_listed_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let shared = Shared::new(t.path());
        let src = t.path().join("src.txt");
        fs::write(&src, "hello").unwrap();
        let hex = shared.put(&src).unwrap();
        let listed = BlobStore::list(&shared, Duration::from_secs(1)).unwrap();
        assert_eq!(
            listed,
            vec![StoredBlob {
                hex: hex.clone(),
                size: 5
            }]
        );
        assert!(
            BlobStore::missing(&shared, std::slice::from_ref(&hex), Duration::ZERO)
                .unwrap()
                .is_empty()
        );
        fs::create_dir_all(shared.attempt_dir("r1", "a", 1).join("work")).unwrap();
        fs::create_dir_all(shared.attempt_dir("r1", "a", 2)).unwrap();
        let mut all = shared.attempts(Duration::ZERO).unwrap();
        all.sort();
        assert_eq!(all.len(), 2);
        assert_eq!(
            shared.remove_attempts(&all[..1], Duration::ZERO).unwrap(),
            1
        );
        assert!(!shared.attempt_dir("r1", "a", 1).exists());
        assert!(shared.attempt_dir("r1", "a", 2).exists());
        let escape = RemoteAttempt {
            run: "..".into(),
            step: "x".into(),
            attempt: "1".into(),
        };
        assert_eq!(
            shared.remove_attempts(&[escape], Duration::ZERO).unwrap(),
            0
        );
        let r = BlobStore::remove(&shared, std::slice::from_ref(&hex), Duration::ZERO).unwrap();
        assert_eq!((r.blobs, r.bytes), (1, 5));
        assert_eq!(
            BlobStore::missing(&shared, std::slice::from_ref(&hex), Duration::ZERO).unwrap(),
            vec![hex]
        );
    }
}
