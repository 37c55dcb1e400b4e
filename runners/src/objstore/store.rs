//! [`ObjectBlobs`]: a bucket (under a prefix) as a runner's [`BlobStore`]: existence checks
//! by HEAD requests (a few at a time, bounded by the caller's timeout), listing and deleting
//! for garbage collection, and sessions that stream blobs in and out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::config::{ObjectStoreConfig, Target};
use super::error::{Failure, ObjectStoreError, blob_error};
use super::runtime;
use super::session::Session;
use crate::{BlobError, BlobSession, BlobStore, Removed, StoredBlob};

/// How many HEAD requests are in flight at once.
const HEADS_AT_ONCE: usize = 16;
/// Above this many blobs, one listing (1,000 names a request) is asked instead of a HEAD each.
const LIST_OVER: usize = 1000;

/// The blobs of a runner in object storage, at `PREFIX/cas/<blake3 hex>`.
pub struct ObjectBlobs {
    pub(crate) target: Arc<Target>,
    /// For transfers: retries for minutes.
    pub(crate) patient: Arc<dyn ObjectStore>,
    /// For checks bounded by a timeout: a few quick tries, so the reason comes back in time.
    pub(crate) quick: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for ObjectBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobs")
            .field("runner", &self.target.runner)
            .field("url", &self.target.url)
            .field("endpoint", &self.target.endpoint)
            .finish()
    }
}

impl ObjectBlobs {
    /// The store of runner `runner` described by `cfg`, with credentials from this process's
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`). Connects to nothing yet: see [`ObjectBlobs::check`].
    pub fn new(runner: &str, cfg: &ObjectStoreConfig) -> Result<ObjectBlobs, ObjectStoreError> {
        ObjectBlobs::with_env(runner, cfg, &|k| std::env::var(k).ok())
    }

    /// Like [`ObjectBlobs::new`], reading the environment variables through `env`.
    pub fn with_env(
        runner: &str,
        cfg: &ObjectStoreConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ObjectBlobs, ObjectStoreError> {
        let target = Target::resolve(runner, cfg, env)?;
        Ok(ObjectBlobs {
            patient: target.connect(true)?,
            quick: target.connect(false)?,
            target: Arc::new(target),
        })
    }

    /// The store's URL with its prefix (`s3://bucket/prefix`), for messages.
    pub fn url(&self) -> &str {
        &self.target.url
    }

    /// The endpoint requests go to, for messages.
    pub fn endpoint(&self) -> &str {
        &self.target.endpoint
    }

    /// The object key of blob `hex` (`PREFIX/cas/HEX`).
    pub fn key(&self, hex: &str) -> String {
        self.target.blob(hex).to_string()
    }

    fn unanswered(&self, what: &str, timeout: Duration) -> BlobError {
        self.target.no_answer(what, timeout).into_blob_error()
    }

    /// The size of each blob of `hexes` (`None`: not in the store): a HEAD request each, or
    /// one listing of them all when there are many.
    fn sizes(
        &self,
        hexes: &[String],
        timeout: Duration,
    ) -> Result<HashMap<String, Option<u64>>, BlobError> {
        for h in hexes {
            valid_hex(h)?;
        }
        if hexes.len() > LIST_OVER {
            let stored: HashMap<String, u64> = self
                .list(timeout)?
                .into_iter()
                .map(|b| (b.hex, b.size))
                .collect();
            return Ok(hexes
                .iter()
                .map(|h| (h.clone(), stored.get(h).copied()))
                .collect());
        }
        let store = Arc::clone(&self.quick);
        let paths: Vec<(String, Path)> = hexes
            .iter()
            .map(|h| (h.clone(), self.target.blob(h)))
            .collect();
        let heads = async move {
            stream::iter(paths)
                .map(|(hex, path)| {
                    let store = Arc::clone(&store);
                    async move {
                        match store.head(&path).await {
                            Ok(meta) => Ok((hex, Some(meta.size))),
                            Err(e) if Failure::of(&e) == Failure::NotFound => Ok((hex, None)),
                            Err(e) => Err(e),
                        }
                    }
                })
                .buffer_unordered(HEADS_AT_ONCE)
                .try_collect::<HashMap<_, _>>()
                .await
        };
        match runtime::wait_for(timeout, heads).map_err(BlobError::Other)? {
            Some(Ok(found)) => Ok(found),
            Some(Err(e)) => Err(blob_error(&self.target, &e)),
            None => Err(self.unanswered("looking for blobs", timeout)),
        }
    }
}

impl BlobStore for ObjectBlobs {
    fn missing(&self, hexes: &[String], timeout: Duration) -> Result<Vec<String>, BlobError> {
        let sizes = self.sizes(hexes, timeout)?;
        Ok(hexes
            .iter()
            .filter(|h| sizes.get(*h).is_none_or(Option::is_none))
            .cloned()
            .collect())
    }

    fn session(&self) -> Result<Box<dyn BlobSession>, BlobError> {
        Ok(Box::new(Session {
            target: Arc::clone(&self.target),
            store: Arc::clone(&self.patient),
        }))
    }

    fn list(&self, timeout: Duration) -> Result<Vec<StoredBlob>, BlobError> {
        let store = Arc::clone(&self.quick);
        let cas = self.target.cas();
        let listing = async move { store.list(Some(&cas)).try_collect::<Vec<_>>().await };
        let metas = match runtime::wait_for(timeout, listing).map_err(BlobError::Other)? {
            Some(Ok(metas)) => metas,
            Some(Err(e)) => return Err(blob_error(&self.target, &e)),
            None => return Err(self.unanswered("listing the blobs", timeout)),
        };
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?;
                (valid_hex(name).is_ok() && m.location == self.target.blob(name)).then(|| {
                    StoredBlob {
                        hex: name.to_owned(),
                        size: m.size,
                    }
                })
            })
            .collect())
    }

    fn remove(&self, hexes: &[String], timeout: Duration) -> Result<Removed, BlobError> {
        let started = std::time::Instant::now();
        let sizes = self.sizes(hexes, timeout)?;
        let present: Vec<(String, u64)> = sizes
            .into_iter()
            .filter_map(|(h, s)| s.map(|s| (h, s)))
            .collect();
        let store = Arc::clone(&self.quick);
        let paths: Vec<object_store::Result<Path>> = present
            .iter()
            .map(|(h, _)| Ok(self.target.blob(h)))
            .collect();
        let deleting = async move {
            store
                .delete_stream(stream::iter(paths).boxed())
                .try_collect::<Vec<Path>>()
                .await
        };
        let left = timeout.saturating_sub(started.elapsed());
        match runtime::wait_for(left, deleting).map_err(BlobError::Other)? {
            Some(Ok(_)) => Ok(Removed {
                blobs: present.len() as u64,
                bytes: present.iter().map(|(_, s)| s).sum(),
            }),
            Some(Err(e)) => Err(blob_error(&self.target, &e)),
            None => Err(self.unanswered("deleting blobs", timeout)),
        }
    }
}

/// Refuses a name that is not 64 lowercase hex digits (it would name some other object).
pub(crate) fn valid_hex(hex: &str) -> Result<(), BlobError> {
    if hex.len() == 64 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(BlobError::Other(format!(
            "`{hex}` is not a blob name (64 lowercase hex digits)"
        )))
    }
}
