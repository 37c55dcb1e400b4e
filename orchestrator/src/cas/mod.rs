//! The content-addressed artifact store: files and folders named by their blake3 digest.
//!
//! Outputs come in by hard link when they live on the store's filesystem (no copy, however
//! big) and by a streaming copy otherwise; either way the content is hashed while streaming and
//! lands under its name by an atomic rename, so a crash never leaves a blob whose content does
//! not match its name. A folder is stored as a tree manifest listing its files.

mod digest;
mod error;
mod gc;
mod ingest;
mod store;
mod tree;

pub use digest::{Digest, DigestKind, DigestParseError};
pub use error::CasError;
pub use gc::GcStats;
pub use store::Cas;
pub use tree::{Tree, TreeFile};

#[cfg(test)]
mod links_tests;
#[cfg(test)]
mod store_tests;
