//! Small records beside the blobs: the objects of an attempt under `PREFIX/runs/RUN/STEP/N/`
//! (a job's spec going to the node, its exit record, metrics and outputs list coming back),
//! written whole and read whole, and those attempt folders as [`AttemptFolders`] for garbage
//! collection (listing `runs/` and deleting everything under an attempt).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::error::{Failure, blob_error};
use super::runtime;
use super::store::ObjectBlobs;
use crate::{AttemptFolders, BlobError, RemoteAttempt};

/// The folder of the attempt folders, under the store's prefix.
const RUNS: &str = "runs";

impl ObjectBlobs {
    /// The object `rel` (`/`-separated, plain names) under the store's prefix.
    fn object(&self, rel: &str) -> Result<Path, BlobError> {
        let plain = !rel.is_empty()
            && rel
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        let parsed = Path::parse(rel).ok().filter(|_| plain).ok_or_else(|| {
            BlobError::Other(format!("`{rel}` is not a plain relative object name"))
        })?;
        Ok(parsed
            .parts()
            .fold(self.target.prefix.clone(), |dir, part| dir.join(part)))
    }

    /// The key of object `rel` (`PREFIX/rel`), for messages.
    pub fn object_key(&self, rel: &str) -> String {
        self.object(rel)
            .map(|p| p.to_string())
            .unwrap_or_else(|_| rel.to_owned())
    }

    /// Writes the object `rel` whole (retrying like a transfer).
    pub fn put_object(&self, rel: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let path = self.object(rel)?;
        let store = Arc::clone(&self.patient);
        runtime::wait(async move { store.put(&path, PutPayload::from(bytes)).await })
            .map_err(BlobError::Other)?
            .map(|_| ())
            .map_err(|e| blob_error(&self.target, &e))
    }

    /// The content of object `rel`; `None` when there is none.
    pub fn get_object(&self, rel: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.object(rel)?;
        let store = Arc::clone(&self.patient);
        let got = runtime::wait(async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(e) => Err(e),
            }
        })
        .map_err(BlobError::Other)?;
        match got {
            Ok(b) => Ok(b.map(|b| b.to_vec())),
            Err(e) if Failure::of(&e) == Failure::NotFound => Ok(None),
            Err(e) => Err(blob_error(&self.target, &e)),
        }
    }

    /// Every object under `rel`, as keys relative to the store's prefix.
    fn list_under(&self, rel: &str, timeout: Duration) -> Result<Vec<Path>, BlobError> {
        let dir = self.object(rel)?;
        let store = Arc::clone(&self.quick);
        let listing = async move { store.list(Some(&dir)).try_collect::<Vec<_>>().await };
        match runtime::wait_for(timeout, listing).map_err(BlobError::Other)? {
            Some(Ok(metas)) => Ok(metas.into_iter().map(|m| m.location).collect()),
            Some(Err(e)) => Err(blob_error(&self.target, &e)),
            None => Err(self
                .target
                .no_answer(&format!("listing {rel}/"), timeout)
                .into_blob_error()),
        }
    }

    /// The parts of `path` after the store's prefix.
    fn relative_parts(&self, path: &Path) -> Vec<String> {
        let skip = self.target.prefix.parts().count();
        path.parts()
            .skip(skip)
            .map(|p| p.as_ref().to_owned())
            .collect()
    }
}

impl AttemptFolders for ObjectBlobs {
    fn attempts(&self, timeout: Duration) -> Result<Vec<RemoteAttempt>, BlobError> {
        let mut found = BTreeSet::new();
        for path in self.list_under(RUNS, timeout)? {
            // runs/RUN/STEP/ATTEMPT/FILE
            if let [_, run, step, attempt, ..] = self.relative_parts(&path).as_slice() {
                found.insert(RemoteAttempt {
                    run: run.clone(),
                    step: step.clone(),
                    attempt: attempt.clone(),
                });
            }
        }
        Ok(found.into_iter().collect())
    }

    fn remove_attempts(
        &self,
        attempts: &[RemoteAttempt],
        timeout: Duration,
    ) -> Result<usize, BlobError> {
        let started = std::time::Instant::now();
        let mut paths = Vec::new();
        let mut removed = 0;
        for a in attempts {
            let left = timeout.saturating_sub(started.elapsed());
            let under = self.list_under(&format!("{RUNS}/{}", a.rel()), left)?;
            removed += usize::from(!under.is_empty());
            paths.extend(under);
        }
        let store = Arc::clone(&self.quick);
        let deleting = async move {
            store
                .delete_stream(stream::iter(paths.into_iter().map(Ok)).boxed())
                .try_collect::<Vec<Path>>()
                .await
        };
        let left = timeout.saturating_sub(started.elapsed());
        match runtime::wait_for(left, deleting).map_err(BlobError::Other)? {
            Some(Ok(_)) => Ok(removed),
            Some(Err(e)) => Err(blob_error(&self.target, &e)),
            None => Err(self
                .target
                .no_answer("deleting attempt records", timeout)
                .into_blob_error()),
        }
    }
}
