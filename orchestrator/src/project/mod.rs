//! The project a submission carries to the daemon: the workflow file and every project file it
//! reads, as a [`Manifest`] of (path, digest, size, mode) whose blobs travel only when the
//! daemon's store lacks them.
//!
//! The client finds and hashes the files ([`collect`]); the daemon checks the manifest
//! (paths that stay inside, limits), takes in blobs one upload at a time ([`store_blob`]:
//! streamed, checked against the name they were sent under) and turns a submission into a
//! [`Snapshot`]: one tree in its store, laid out as the run's project folder by hard links.
//! `tuna gc` keeps the snapshots a run or a schedule refers to ([`gc`]).

mod aliases;
mod blob_name;
mod collect;
mod error;
pub mod gc;
mod intake;
mod limits;
mod manifest;
mod snapshot;

pub use aliases::Aliases;
pub use blob_name::{BadBlobName, BlobName};
pub use collect::{Hashed, LocalFile, LocalProject, collect};
pub use error::ProjectError;
pub use intake::store_blob;
pub use limits::{DEFAULT_MAX_FILE, DEFAULT_MAX_FILES, DEFAULT_MAX_TOTAL, Limits, human_size};
pub use manifest::{Manifest, ManifestFile, check_path};
pub use snapshot::{SUBMISSIONS, Snapshot, Snapshots};

#[cfg(test)]
mod round_trip_tests;
