//! The Ray runner: each attempt of a step is one Ray Job on a real cluster, driven through the
//! dashboard's Jobs REST API with reqwest (`client.rs`).
//!
//! The job's submission id comes from `(run, step, attempt)` (`handle.rs`), so launching an
//! attempt again after tuna crashed finds the job and watches it instead of submitting it
//! twice (`runner.rs`). Artifacts travel through a folder every node mounts (`shared.rs`):
//! inputs go into its blobs (named by blake3, like the local CAS) and the job's spec into its
//! attempt folder; on the node the wrapper `tuna ray-exec` (`exec.rs`) places them, runs the
//! script with the job's env (Ray's `runtime_env.env_vars`: only the job's env, never a
//! secret's value nor the Ray token; a step's secrets go in a 0600 `secrets.json` of the
//! attempt folder that the wrapper takes before the script starts, masking them in its
//! output), puts the declared outputs back and writes an exit record.
//! `watch.rs` polls the job, copies its log as it grows (`logs.rs`), stops it at the step's
//! timeout or past its `wait_for_capacity`, and brings the outputs into the local attempt
//! folder (`back.rs`); `check.rs` reports the cluster for `tuna runners check`. Settings are
//! in `config.rs`.
//!
//! With `artifacts: { url: s3://… }` there is no shared folder: blobs travel through object
//! storage (`crate::objstore`), the job's spec and its records (exit, metrics, outputs list)
//! are objects of the attempt (`bucket.rs`), the wrapper works in a folder of the node's own
//! and reads and writes the bucket with the node's own credentials (`node.rs`), and outputs
//! above `keep_remote_over` stay in the bucket, listed in `kept.json` (`fetch.rs`); the
//! runner's `blob_store()` and `attempt_folders()` are the bucket's, so cache checks, moves,
//! `tuna pull` and gc reach them.

mod back;
mod bucket;
mod check;
mod client;
mod config;
mod exec;
mod fetch;
mod handle;
mod logs;
mod node;
mod runner;
mod shared;
mod shared_gc;
mod watch;

pub use client::RayError;
pub use config::{DEFAULT_NODE_DIR, RayArtifacts, RayConfig};
pub use exec::{ExecArgs, ray_exec};
pub use handle::{RayHandle, submission_id};
pub use runner::RayRunner;
