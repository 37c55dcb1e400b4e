//! tuna's built-in step kinds (`uses:` in a workflow).
//!
//! A kind checks its `with:` mapping at validation time and says what runs for it. The
//! registry here is the one place the orchestrator asks; kinds that need libtorch sit behind
//! the cargo feature `torch`.

mod kind;
#[cfg(feature = "torch")]
pub mod ml;

pub use kind::{StepKind, WithProblem, all, find};
