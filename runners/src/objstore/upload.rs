//! Writing a blob: the source is read on the caller's thread in parts of [`PART`] bytes and
//! hashed on the way. A blob that fits in one part is checked whole before one PUT; a bigger
//! one goes up as a multipart upload with a few parts in flight, and is completed only when
//! the whole content hashed to the blob's name: otherwise the upload is aborted, so content
//! that does not match its name never becomes an object. Memory stays at a few parts
//! (about 32 MiB; more only for blobs of tens of GiB, whose parts grow).

use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc;

use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

use super::config::Target;
use super::error::blob_error;
use super::runtime;
use super::store::valid_hex;
use crate::BlobError;

/// The size of the first parts (S3 wants at least 5 MiB for every part but the last).
pub(crate) const PART: usize = 8 << 20;
/// Parts grow by [`PART`] every this many, since S3 takes at most 10,000 parts: 8 MiB parts
/// alone would stop at 80 GiB; growing ones reach about 430 GiB.
const GROW_EVERY: usize = 1000;
/// How many parts are uploading at once while the next one is read.
const PARTS_IN_FLIGHT: usize = 3;

/// Stores what `source` yields as blob `hex`; returns its size.
pub(crate) fn upload(
    store: &Arc<dyn ObjectStore>,
    target: &Target,
    hex: &str,
    source: &mut dyn Read,
) -> Result<u64, BlobError> {
    valid_hex(hex)?;
    let path = target.blob(hex);
    let mut hasher = blake3::Hasher::new();
    let first = read_part(source, PART)?;
    hasher.update(&first);
    if first.len() < PART {
        refuse_corrupt(hex, &hasher)?;
        let size = first.len() as u64;
        let store = Arc::clone(store);
        runtime::wait(async move { store.put(&path, PutPayload::from(first)).await })
            .map_err(BlobError::Other)?
            .map_err(|e| blob_error(target, &e))?;
        return Ok(size);
    }
    let upload = {
        let store = Arc::clone(store);
        runtime::wait(async move { store.put_multipart(&path).await })
            .map_err(BlobError::Other)?
            .map_err(|e| blob_error(target, &e))?
    };
    let mut parts = Parts::new(upload);
    let sent = parts.send_all(first, source, &mut hasher, target);
    let sent = sent.and_then(|size| refuse_corrupt(hex, &hasher).map(|()| size));
    match sent {
        Ok(size) => {
            parts.complete(target)?;
            Ok(size)
        }
        Err(e) => {
            parts.abort();
            Err(e)
        }
    }
}

/// A multipart upload with its parts in flight.
struct Parts {
    upload: Option<Box<dyn MultipartUpload>>,
    done_tx: mpsc::Sender<object_store::Result<()>>,
    done_rx: mpsc::Receiver<object_store::Result<()>>,
    in_flight: usize,
}

impl Parts {
    fn new(upload: Box<dyn MultipartUpload>) -> Parts {
        let (done_tx, done_rx) = mpsc::channel();
        Parts {
            upload: Some(upload),
            done_tx,
            done_rx,
            in_flight: 0,
        }
    }

    /// Uploads `first` and then the rest of `source`, hashing it; returns the total size.
    fn send_all(
        &mut self,
        first: Vec<u8>,
        source: &mut dyn Read,
        hasher: &mut blake3::Hasher,
        target: &Target,
    ) -> Result<u64, BlobError> {
        let mut size = first.len() as u64;
        self.send(first, target)?;
        for index in 1.. {
            let want = PART * (1 + index / GROW_EVERY);
            let part = read_part(source, want)?;
            if part.is_empty() {
                break;
            }
            hasher.update(&part);
            size += part.len() as u64;
            let last = part.len() < want;
            self.send(part, target)?;
            if last {
                break;
            }
        }
        while self.in_flight > 0 {
            self.wait_one(target)?;
        }
        Ok(size)
    }

    /// Starts uploading one part, after waiting for room.
    fn send(&mut self, part: Vec<u8>, target: &Target) -> Result<(), BlobError> {
        while self.in_flight >= PARTS_IN_FLIGHT {
            self.wait_one(target)?;
        }
        let upload = self.upload.as_mut().expect("an upload in progress");
        let request = upload.put_part(PutPayload::from(part));
        let done = self.done_tx.clone();
        runtime::handle()
            .map_err(BlobError::Other)?
            .spawn(async move {
                let _ = done.send(request.await);
            });
        self.in_flight += 1;
        Ok(())
    }

    fn wait_one(&mut self, target: &Target) -> Result<(), BlobError> {
        let done = self.done_rx.recv().map_err(|_| {
            BlobError::Other("an upload request stopped without an answer (it panicked)".into())
        })?;
        self.in_flight -= 1;
        done.map_err(|e| blob_error(target, &e))
    }

    /// Completes the upload: the object appears, whole. On failure the upload is aborted.
    fn complete(&mut self, target: &Target) -> Result<(), BlobError> {
        let mut upload = self.upload.take().expect("an upload in progress");
        let (upload, done) = runtime::wait(async move {
            let done = upload.complete().await;
            (upload, done)
        })
        .map_err(BlobError::Other)?;
        done.map(|_| ()).map_err(|e| {
            self.upload = Some(upload);
            self.abort();
            blob_error(target, &e)
        })
    }

    /// Gives the upload up (its parts are deleted); best effort.
    fn abort(&mut self) {
        // Parts still in flight would otherwise land after the abort.
        while self.in_flight > 0 && self.done_rx.recv().is_ok() {
            self.in_flight -= 1;
        }
        if let Some(mut upload) = self.upload.take()
            && let Err(e) = runtime::wait(async move { upload.abort().await })
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        {
            tracing::warn!("aborting a refused upload: {e}");
        }
    }
}

/// Reads up to `size` bytes (fewer only at the end of `source`).
fn read_part(source: &mut dyn Read, size: usize) -> Result<Vec<u8>, BlobError> {
    let mut part = Vec::with_capacity(size);
    source
        .take(size as u64)
        .read_to_end(&mut part)
        .map_err(|e| BlobError::Other(format!("reading the blob to store: {e}")))?;
    Ok(part)
}

fn refuse_corrupt(hex: &str, hasher: &blake3::Hasher) -> Result<(), BlobError> {
    let got = hasher.finalize().to_hex();
    if got.as_str() == hex {
        Ok(())
    } else {
        Err(BlobError::Corrupt {
            hex: hex.to_owned(),
            got: got.to_string(),
        })
    }
}
