//! The ssh runner: runs jobs on another machine over SSH (libssh2 through the `ssh2` crate).
//!
//! One connection per host, reused by every step and reopened when it drops (`host.rs`). Host
//! keys are checked strictly against known_hosts (`host_keys.rs`). Each attempt runs detached
//! under a small POSIX-shell wrapper uploaded once (`wrap.sh`, `wrapper.rs`): it claims the
//! remote attempt folder atomically, runs the script in its own session, enforces the timeout
//! on the process group and records `exit.json`, so a second launch of the same attempt never
//! runs it twice and a restarted orchestrator re-attaches through the stored handle. Inputs
//! travel over SFTP into a content-addressed folder on the host (`stage.rs`); logs stream back
//! into the local attempt folder while the job runs (`logs.rs`), secret values masked
//! (`mask.rs`); after it succeeded, declared
//! outputs bigger than `keep_remote_over` stay in that content-addressed folder (`keep.rs`,
//! hashed on the host by `hash.rs`) and the others come back (`fetch.rs`). The folder is also
//! a [`BlobStore`](crate::BlobStore) (`store.rs`) the orchestrator moves kept outputs through,
//! and garbage collection lists and deletes blobs and attempt folders there (`gc.rs`).
//! All ssh2 calls are blocking and run on blocking threads.

mod check;
mod config;
mod conn;
mod error;
mod fetch;
mod gc;
mod handle;
mod hash;
mod host;
mod host_keys;
mod keep;
mod logs;
mod mask;
mod poll;
mod runner;
mod stage;
mod store;
mod watch;
mod wrapper;

pub use config::{DEFAULT_KEEP_REMOTE_OVER, SshConfig};
pub use error::ConnectError;
pub use handle::SshHandle;
pub use runner::SshRunner;
pub use stage::StageReport;
pub(crate) use stage::plan as plan_stage;
