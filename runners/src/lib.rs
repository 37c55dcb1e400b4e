//! Where tuna's steps run.
//!
//! This crate owns the [`Runner`] trait and the wire types every runner speaks: a [`Job`] to
//! run, the [`Handle`] that names a launched job durably (so a restarted orchestrator can
//! watch it again), and the [`Outcome`] it ended with. Runner kinds live in their own modules;
//! [`shell::quote`] is the one shell quoter of tuna (orchestrator and runners alike).
//! The crate never imports the orchestrator or the step kinds.

mod attempts;
mod blobs;
mod job;
mod kept;
pub mod local;
pub mod objstore;
pub mod ray;
pub mod redact;
mod runner;
pub mod shell;
pub mod ssh;
mod step_env;

pub use attempts::{AttemptFolders, RemoteAttempt};
pub use blobs::{BlobError, BlobSession, BlobStore, Removed, StoredBlob, write_verified};
pub use job::{Gpu, Job, Resources, Stage};
pub use kept::{KeptFile, KeptOutput, KeptOutputs};
pub use runner::{CheckProblem, FoundGpu, Handle, Outcome, Runner, RunnerError, RunnerInfo};
pub use step_env::{ALLOWED as STEP_ENV_ALLOWED, STEP_SETTINGS, StepEnv};
