//! Durable state: the sled store and the records in it.

mod daemon_records;
mod daemon_trees;
mod db;
mod pending_exports;
mod records;
mod reserve;

pub use daemon_records::*;
pub use db::{Store, StoreError};
pub use pending_exports::PendingExport;
pub use records::*;
pub use reserve::{RESERVE, free_bytes, is_disk_full};
