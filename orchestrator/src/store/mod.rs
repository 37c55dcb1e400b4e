//! Durable state: the sled store and the records in it.

mod db;
mod records;

pub use db::{Store, StoreError};
pub use records::*;
