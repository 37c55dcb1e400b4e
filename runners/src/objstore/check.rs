//! [`ObjectBlobs::check`]: whether the store can be used, before anything runs: one listing
//! (reachable, bucket there, credentials accepted) and one small object written and deleted
//! (credentials allowed to write), each failure turned into one message that names the runner
//! and what to fix.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::error::{ObjectStoreError, classify};
use super::runtime;
use super::store::ObjectBlobs;

impl ObjectBlobs {
    /// Lists the store's prefix and writes and deletes a small object under `PREFIX/tmp/`,
    /// within about `timeout`. Returns a one-line description of the store.
    pub fn check(&self, timeout: Duration) -> Result<String, ObjectStoreError> {
        let started = Instant::now();
        let target = &self.target;
        let store = Arc::clone(&self.quick);
        let prefix = target.prefix.clone();
        self.bounded(timeout, "listing the bucket", async move {
            store.list_with_delimiter(Some(&prefix)).await.map(|_| ())
        })?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let probe = target
            .prefix
            .clone()
            .join("tmp")
            .join(format!("check-{}-{nanos}", std::process::id()));
        let store = Arc::clone(&self.quick);
        let left = timeout.saturating_sub(started.elapsed());
        self.bounded(left, "writing a test object", async move {
            store
                .put(&probe, PutPayload::from_static(b"tuna runners check\n"))
                .await?;
            store.delete(&probe).await
        })?;
        Ok(format!(
            "{} at {}: bucket reachable, credentials may read and write",
            target.url, target.endpoint
        ))
    }

    /// Runs one step of the check on the store's runtime, within `timeout`.
    fn bounded(
        &self,
        timeout: Duration,
        what: &str,
        fut: impl Future<Output = object_store::Result<()>> + Send + 'static,
    ) -> Result<(), ObjectStoreError> {
        let target = &self.target;
        match runtime::wait_for(timeout, fut) {
            Err(e) => Err(ObjectStoreError::Other {
                runner: target.runner.clone(),
                url: target.url.clone(),
                detail: e,
            }),
            Ok(None) => Err(target.no_answer(what, timeout)),
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(classify(target, &e)),
        }
    }
}
