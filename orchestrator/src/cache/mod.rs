//! Cache keys, input digests and the reasons a step reruns.

mod dirty;
mod hash;
mod key;

pub use dirty::{Change, DirtyReason};
pub use hash::digest_path;
pub use key::{KEY_VERSION, KeyInputs};
