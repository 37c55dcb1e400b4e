//! The object-store mode of a Ray runner, as both sides use it: an attempt's records live at
//! `PREFIX/runs/RUN/STEP/ATTEMPT/` (`job.json` written before the job is submitted; `exit.json`,
//! `metrics.json`, `outputs.json` and the `abandoned` mark after), blobs at `PREFIX/cas/<hex>`
//! ([`ObjectBlobs`]). Blobs go up named by the blake3 of what was read, only when the store
//! lacks them, and come down into a temporary file renamed into place only when the content
//! matches its name.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::exec::SPEC;
use super::shared::{JobSpec, SpecFile};
use crate::objstore::ObjectBlobs;
use crate::{BlobError, BlobSession, BlobStore, Job, RunnerError};

/// How long a look for the blobs the store lacks may take.
const MISSING_TIMEOUT: Duration = Duration::from_secs(60);

/// One attempt's place in the bucket.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub store: Arc<ObjectBlobs>,
    /// `runs/RUN/STEP/ATTEMPT`.
    pub attempt: String,
}

impl Bucket {
    pub fn new(store: Arc<ObjectBlobs>, attempt: String) -> Bucket {
        Bucket { store, attempt }
    }

    /// `runs/RUN/STEP/ATTEMPT`, checked to be three plain names.
    pub fn attempt_key(run: &str, step: &str, attempt: &str) -> Result<String, String> {
        let plain = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && !s.contains('/')
                && !s.chars().any(char::is_control)
        };
        if [run, step, attempt].iter().all(|s| plain(s)) {
            Ok(format!("runs/{run}/{step}/{attempt}"))
        } else {
            Err(format!("`{run}/{step}/{attempt}` is not RUN/STEP/ATTEMPT"))
        }
    }

    fn rel(&self, name: &str) -> String {
        format!("{}/{name}", self.attempt)
    }

    /// Writes the record `name` of the attempt.
    pub fn put_record(&self, name: &str, bytes: Vec<u8>) -> io::Result<()> {
        self.store
            .put_object(&self.rel(name), bytes)
            .map_err(io::Error::other)
    }

    /// Reads the record `name` of the attempt; `None` when there is none.
    pub fn record(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.store
            .get_object(&self.rel(name))
            .map_err(io::Error::other)
    }

    /// The key of record `name`, for messages.
    pub fn key(&self, name: &str) -> String {
        self.store.object_key(&self.rel(name))
    }

    /// Puts the inputs of `job` the store lacks into it, and the job's spec; returns the
    /// bytes uploaded. `runner` is the runner's name, for what a failure says.
    pub fn stage(&self, job: &Job, runner: &str) -> Result<u64, RunnerError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            let url = self.store.url();
            let message = format!(
                "staging the inputs of `{}` into {url}: {what}: {e}",
                job.step
            );
            RunnerError::remote(runner, message)
        };
        let (blobs, dirs) =
            crate::ssh::plan_stage(&job.stage).map_err(|e| fail("listing them", &e))?;
        let mut local: Vec<(String, std::path::PathBuf)> = blobs
            .iter()
            .filter_map(|b| Some((b.digest.clone(), b.source.clone()?)))
            .collect();
        local.sort();
        local.dedup_by(|a, b| a.0 == b.0);
        let hexes: Vec<String> = local.iter().map(|(h, _)| h.clone()).collect();
        let lacking = self
            .store
            .missing(&hexes, MISSING_TIMEOUT)
            .map_err(|e| fail("looking for blobs", &e))?;
        let mut session = self
            .store
            .session()
            .map_err(|e| fail("opening a session", &e))?;
        let mut sent = 0;
        for (hex, source) in local.iter().filter(|(h, _)| lacking.contains(h)) {
            let mut file =
                File::open(source).map_err(|e| fail(&source.display().to_string(), &e))?;
            sent += session
                .put(hex, false, &mut file)
                .map_err(|e| fail(&source.display().to_string(), &e))?;
        }
        let spec = JobSpec {
            script: job.script.clone(),
            files: blobs
                .into_iter()
                .map(|b| SpecFile {
                    dest: b.dest,
                    hex: b.digest,
                    executable: b.executable,
                })
                .collect(),
            dirs,
            outputs: job.outputs.clone(),
        };
        let bytes =
            serde_json::to_vec_pretty(&spec).map_err(|e| RunnerError::Protocol(e.to_string()))?;
        self.put_record(SPEC, bytes)
            .map_err(|e| fail("writing the job's spec", &e))?;
        Ok(sent)
    }
}

/// Puts the file at `path` into the store unless the store has its content; its blake3.
pub(crate) fn upload_file(store: &ObjectBlobs, path: &Path) -> io::Result<String> {
    let hex = hash_file(path)?;
    let mut file = File::open(path)?;
    // A blob already there is kept and the file not read again.
    let mut session = store.session().map_err(io::Error::other)?;
    session.put(&hex, false, &mut file).map_err(|e| match e {
        BlobError::Corrupt { .. } => io::Error::other(format!(
            "{} changed while it was uploaded: {e}",
            path.display()
        )),
        e => io::Error::other(e),
    })?;
    Ok(hex)
}

fn hash_file(path: &Path) -> io::Result<String> {
    let file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Writes blob `hex` of the store to `dest` (parents made, through a temporary name), checking
/// its content; returns its size.
pub(crate) fn download(
    session: &mut dyn BlobSession,
    hex: &str,
    dest: &Path,
    executable: bool,
) -> io::Result<u64> {
    let mut reader = session.open(hex).map_err(io::Error::other)?;
    crate::write_verified(&mut reader, dest, hex, executable).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_keys_are_three_plain_names() {
        assert_eq!(
            Bucket::attempt_key("r1", "train", "2").unwrap(),
            "runs/r1/train/2"
        );
        for (r, s, a) in [
            ("..", "s", "1"),
            ("r", "a/b", "1"),
            ("r", "s", ""),
            ("r", "s", "."),
        ] {
            assert!(Bucket::attempt_key(r, s, a).is_err(), "{r}/{s}/{a}");
        }
    }
}
