//! Reading a blob as a stream: a background task fetches it in ranges of [`RANGE`] bytes, a
//! couple ahead of the reader, and hands them over a short channel, so memory stays at a few
//! ranges whatever the blob's size. One request per range keeps each request short: a
//! stalled one times out and is retried on its own instead of failing a long download.
//! The reader counts the bytes: a stream that ends early is an error, never a short blob.
//! Reads wait on the store's runtime, like every other call (see `runtime.rs`).

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc;

use super::config::Target;
use super::error::blob_error;
use super::runtime;
use crate::BlobError;

/// The size of one ranged GET.
pub(crate) const RANGE: u64 = 8 << 20;
/// How many ranges are fetched at once.
const AHEAD: usize = 2;

pub(crate) struct BlobReader {
    /// Taken while a receive runs on the store's runtime.
    chunks: Option<mpsc::Receiver<Result<Bytes, String>>>,
    current: Bytes,
    got: u64,
    size: u64,
    hex: String,
}

impl BlobReader {
    /// Starts fetching blob `hex` of `size` bytes.
    pub fn start(
        store: Arc<dyn ObjectStore>,
        target: Arc<Target>,
        hex: &str,
        size: u64,
    ) -> Result<BlobReader, BlobError> {
        let (tx, rx) = mpsc::channel(1);
        let path = target.blob(hex);
        let ranges: Vec<Range<u64>> = (0..size)
            .step_by(RANGE as usize)
            .map(|start| start..size.min(start + RANGE))
            .collect();
        runtime::handle()
            .map_err(BlobError::Other)?
            .spawn(async move {
                let mut gets = stream::iter(ranges)
                    .map(|r| {
                        let store = Arc::clone(&store);
                        let path = path.clone();
                        async move { store.get_range(&path, r).await }
                    })
                    .buffered(AHEAD);
                while let Some(got) = gets.next().await {
                    let chunk = got.map_err(|e| blob_error(&target, &e).to_string());
                    let failed = chunk.is_err();
                    // The reader went away: stop fetching.
                    if tx.send(chunk).await.is_err() || failed {
                        return;
                    }
                }
            });
        Ok(BlobReader {
            chunks: Some(rx),
            current: Bytes::new(),
            got: 0,
            size,
            hex: hex.to_owned(),
        })
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            let Some(mut chunks) = self.chunks.take() else {
                return Err(io::Error::other("an earlier read of this blob failed"));
            };
            // Received on the store's runtime, so this works from any thread (even one of a
            // runtime, where a blocking receive would panic).
            let (chunks, next) = runtime::wait(async move {
                let next = chunks.recv().await;
                (chunks, next)
            })
            .map_err(io::Error::other)?;
            self.chunks = Some(chunks);
            match next {
                Some(Ok(chunk)) => {
                    self.got += chunk.len() as u64;
                    self.current = chunk;
                }
                Some(Err(e)) => return Err(io::Error::other(e)),
                None if self.got == self.size => return Ok(0),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "blob {}: the download stopped after {} of {} bytes",
                            self.hex, self.got, self.size
                        ),
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}
