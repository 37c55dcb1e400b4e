//! Cache keys, what enters them (`inputs.rs`), input digests and the reasons a step reruns.

mod dirty;
mod hash;
mod inputs;
mod key;

pub use dirty::{Change, DirtyReason};
pub use hash::digest_path;
pub use inputs::{RUN_ID, SCHEDULED_TIME, key_inputs, with_paths};
pub use key::{KEY_VERSION, KeyInputs};
