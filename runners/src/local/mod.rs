//! The local runner: runs jobs as processes on this machine, each under a detached shim.
//!
//! `launch` starts `tuna-shim ATTEMPT_DIR` in its own session and hands it the job on its
//! standard input. The shim claims the attempt atomically (so a second launch of the same attempt
//! never runs the script again), runs the script in its own process group, enforces the
//! timeout, and records the outcome in `exit.json`. One-line simple commands run without bash. Everything the runner needs to watch or
//! cancel a job lives in the attempt folder and the [`Handle`](crate::Handle), so a restarted
//! orchestrator can adopt jobs launched by an earlier one.

mod config;
mod direct;
mod exit_record;
pub mod layout;
mod log_pump;
mod pidfd;
mod proc_id;
mod runner;
mod shim;
mod signals;
mod spec;
mod supervisor;

pub use config::LocalConfig;
pub use exit_record::ExitRecord;
pub use proc_id::ProcId;
pub use runner::LocalRunner;
pub use shim::shim_main;
