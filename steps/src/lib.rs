//! tuna's built-in step kinds (`uses:` in a workflow).
//!
//! A kind checks its `with:` mapping at validation time, names the outputs and input paths a
//! step of it has, and runs it (`tuna exec-step`, inside the step's runner). Kinds that need
//! libtorch run in the `tuna-ml` program, built with the cargo feature `torch`.

mod context;
mod error;
mod kind;
mod kinds;
#[cfg(feature = "torch")]
pub mod ml;
mod progress;
pub mod settings;
mod tools;

pub use context::StepContext;
pub use error::StepError;
pub use kind::{Metrics, StepKind, WithProblem};
pub use kinds::serve::ENDPOINT;
pub use kinds::{all, execute_from_env, find};
pub use progress::{ProgressFile, StepProgress};
pub use tools::{on_path, tuna_ml};
