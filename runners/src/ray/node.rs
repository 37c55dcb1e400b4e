//! Where the wrapper on a node (`exec.rs`) finds an attempt's spec and blobs and leaves its
//! records: [`SharedNode`] in the shared folder every node mounts (the attempt folder is in
//! it), [`BucketNode`] in object storage (spec and records are objects of the attempt, blobs
//! come down and go up checked against their names; credentials come from the node's own
//! environment, the endpoint and region from the job's arguments).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bucket::{self, Bucket};
use super::exec::{ABANDONED, ExecArgs, METRICS, SECRETS, SPEC, write_atomic};
use super::shared::{JobSpec, Shared};
use crate::BlobStore;
use crate::objstore::{ObjectBlobs, ObjectStoreConfig};

/// The wrapper's view of where an attempt's artifacts are.
pub(crate) trait Node {
    /// Whether the runner gave the job up before it started.
    fn abandoned(&self) -> io::Result<bool>;
    /// The job's spec.
    fn spec(&self) -> io::Result<JobSpec>;
    /// Copies blob `hex` to `dest`, checking its content.
    fn place(&self, hex: &str, dest: &Path, executable: bool) -> io::Result<()>;
    /// Puts the file at `path` into the blobs; its blake3.
    fn put(&self, path: &Path) -> io::Result<String>;
    /// Leaves the record `name` where the runner reads it.
    fn record(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// The step's metrics file at `path` (if it wrote one) to where the runner reads it.
    fn metrics(&self, path: &Path) -> io::Result<()>;
    /// The values of the step's secrets, taken away from where the runner left them (a
    /// runner that cannot pass secrets leaves none).
    fn take_secrets(&self) -> io::Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
}

/// The shared folder: the attempt folder `dir` is in it.
pub(crate) struct SharedNode {
    pub shared: Shared,
    pub dir: PathBuf,
}

impl Node for SharedNode {
    fn abandoned(&self) -> io::Result<bool> {
        Ok(self.dir.join(ABANDONED).exists())
    }

    fn spec(&self) -> io::Result<JobSpec> {
        let path = self.dir.join(SPEC);
        let text = std::fs::read(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&text).map_err(io::Error::other)
    }

    fn place(&self, hex: &str, dest: &Path, executable: bool) -> io::Result<()> {
        self.shared.place(hex, dest, executable)
    }

    fn put(&self, path: &Path) -> io::Result<String> {
        self.shared.put(path)
    }

    fn record(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.dir.join(name), bytes)
    }

    /// `$TUNA_METRICS` names the shared attempt folder already.
    fn metrics(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn take_secrets(&self) -> io::Result<BTreeMap<String, String>> {
        let path = self.dir.join(SECRETS);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        std::fs::remove_file(&path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
    }
}

/// Object storage: the node works in a folder of its own.
pub(crate) struct BucketNode {
    bucket: Bucket,
}

impl BucketNode {
    /// The attempt `args.attempt` of the bucket `args.store`, with credentials from this
    /// process's environment.
    pub fn open(args: &ExecArgs) -> Result<BucketNode, String> {
        let cfg = ObjectStoreConfig {
            url: args.store.clone(),
            endpoint: args.endpoint.clone(),
            region: args.region.clone(),
        };
        let runner = args.runner.as_deref().unwrap_or("ray");
        let store = ObjectBlobs::new(runner, &cfg).map_err(|e| e.to_string())?;
        let rel = args
            .attempt
            .as_deref()
            .ok_or("--attempt RUN/STEP/ATTEMPT is needed with a bucket")?;
        let parts: Vec<&str> = rel.split('/').collect();
        let [run, step, attempt] = parts.as_slice() else {
            return Err(format!("--attempt `{rel}` is not RUN/STEP/ATTEMPT"));
        };
        let key = Bucket::attempt_key(run, step, attempt)?;
        // A folder left by an earlier start of the same attempt is tuna's own: start clean.
        let _ = std::fs::remove_dir_all(&args.dir);
        std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
        Ok(BucketNode {
            bucket: Bucket::new(Arc::new(store), key),
        })
    }
}

impl Node for BucketNode {
    fn abandoned(&self) -> io::Result<bool> {
        Ok(self.bucket.record(ABANDONED)?.is_some())
    }

    fn spec(&self) -> io::Result<JobSpec> {
        let bytes = self.bucket.record(SPEC)?.ok_or_else(|| {
            io::Error::other(format!("{} is not in the bucket", self.bucket.key(SPEC)))
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::other(format!("{}: {e}", self.bucket.key(SPEC))))
    }

    fn place(&self, hex: &str, dest: &Path, executable: bool) -> io::Result<()> {
        let mut session = self.bucket.store.session().map_err(io::Error::other)?;
        bucket::download(session.as_mut(), hex, dest, executable).map(|_| ())
    }

    fn put(&self, path: &Path) -> io::Result<String> {
        bucket::upload_file(&self.bucket.store, path)
    }

    fn record(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.bucket.put_record(name, bytes.to_vec())
    }

    fn metrics(&self, path: &Path) -> io::Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() => self.record(METRICS, &std::fs::read(path)?),
            _ => Ok(()),
        }
    }
}
