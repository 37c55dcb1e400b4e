//! The local runner: runs jobs as processes on this machine, through one detached supervisor
//! per home.
//!
//! `launch` hands the job to the home's supervisor over its socket (starting it with
//! `tuna-shim --supervisor DIR` when none listens). The supervisor forks a waiter (no exec)
//! that claims the attempt atomically (so a second launch of the same attempt never runs the
//! script again), runs the script in its own process group (the step's one exec), enforces
//! the timeout, and records the outcome in `exit.json`. One-line simple commands run without
//! bash. Everything the runner needs to watch or cancel a job lives in the attempt folder and
//! the [`Handle`](crate::Handle) (the waiter's pid and start time), so a restarted
//! orchestrator can adopt jobs launched by an earlier one, and a killed supervisor loses no
//! running job.

mod attempt;
mod config;
mod connect;
pub mod daemon;
mod direct;
mod exit_record;
mod fd_pass;
pub mod journal;
pub mod layout;
mod log_pump;
mod pidfd;
mod proc_id;
mod runner;
mod shim;
mod signals;
mod spawn;
mod spec;
mod waiter;

pub use config::LocalConfig;
pub use exit_record::ExitRecord;
pub use proc_id::ProcId;
pub use runner::LocalRunner;
pub use shim::shim_main;
