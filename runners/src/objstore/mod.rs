//! Object storage as a runner's artifact store (`artifacts: { url: s3://bucket/prefix, … }` in
//! runners.yaml): blobs named by their blake3 at `PREFIX/cas/<hex>`, reached through the
//! `object_store` crate (S3 and S3-compatible servers today) by both tuna and the runner's
//! machines. [`ObjectBlobs`] is the [`BlobStore`](crate::BlobStore) over it (`store.rs`):
//! existence by HEAD, listing and deleting for gc, sessions (`session.rs`) that stream blobs
//! in as multipart uploads completed only when the content hashed to its name (`upload.rs`)
//! and out as ranged GETs (`reader.rs`). The store's async client runs on a small runtime of
//! its own (`runtime.rs`), so the blocking trait works from any thread. Beside the blobs,
//! small records of attempts under `PREFIX/runs/RUN/STEP/N/` and those folders for gc
//! (`objects.rs`). Settings and credentials: `config.rs`; errors sorted into one message a
//! case: `error.rs`, `check.rs`.

mod check;
mod config;
mod error;
mod objects;
mod reader;
mod runtime;
mod session;
mod store;
mod upload;

pub use config::ObjectStoreConfig;
pub use error::ObjectStoreError;
pub use store::ObjectBlobs;
