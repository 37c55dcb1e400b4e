//! A transfer session on an [`ObjectBlobs`](super::ObjectBlobs): blobs read as a stream of
//! ranged GETs ([`BlobReader`]), written by [`upload`], looked up by HEAD. Sessions share the
//! store's connection pool; each call is independent of the others.

use std::io::Read;
use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt};

use super::config::Target;
use super::error::{Failure, blob_error};
use super::reader::BlobReader;
use super::runtime;
use super::store::valid_hex;
use super::upload::upload;
use crate::{BlobError, BlobSession};

pub(crate) struct Session {
    pub target: Arc<Target>,
    pub store: Arc<dyn ObjectStore>,
}

impl Session {
    /// The size of blob `hex`, `None` when the store lacks it.
    fn size(&self, hex: &str) -> Result<Option<u64>, BlobError> {
        valid_hex(hex)?;
        let store = Arc::clone(&self.store);
        let path = self.target.blob(hex);
        match runtime::wait(async move { store.head(&path).await }).map_err(BlobError::Other)? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if Failure::of(&e) == Failure::NotFound => Ok(None),
            Err(e) => Err(blob_error(&self.target, &e)),
        }
    }
}

impl BlobSession for Session {
    fn open(&mut self, hex: &str) -> Result<Box<dyn Read + Send + '_>, BlobError> {
        let size = self.size(hex)?.ok_or_else(|| BlobError::Missing {
            runner: self.target.runner.clone(),
            hex: hex.to_owned(),
        })?;
        let reader =
            BlobReader::start(Arc::clone(&self.store), Arc::clone(&self.target), hex, size)?;
        Ok(Box::new(reader))
    }

    fn put(
        &mut self,
        hex: &str,
        _executable: bool,
        source: &mut dyn Read,
    ) -> Result<u64, BlobError> {
        // Objects have no mode: whether a file is executable lives in the tree that lists it.
        if self.has(hex)? {
            return Ok(0);
        }
        upload(&self.store, &self.target, hex, source)
    }

    fn has(&mut self, hex: &str) -> Result<bool, BlobError> {
        Ok(self.size(hex)?.is_some())
    }
}
