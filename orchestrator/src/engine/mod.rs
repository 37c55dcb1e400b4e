//! The engine: runs a sealed DAG on runners with caching, retries and resume.
//!
//! [`Engine`] owns the store, the artifact store and the runner pool; a [`dispatcher`] drives one
//! run, executors own one attempt each and report by [`events`].

mod artifacts;
mod attempt_files;
mod check;
mod control;
mod disk;
mod dispatcher;
#[allow(clippy::module_inception)]
mod engine;
mod events;
mod executor;
mod freshness;
mod gate;
mod gc;
mod home;
mod inventory;
mod job;
mod leaderboard;
#[cfg(test)]
mod leaderboard_tests;
mod ledger;
mod plan;
mod pool;
mod progress;
mod pull;
mod remote_gc;
mod run_id;
mod runner_build;
mod secrets;
mod services;
mod view;
mod walk;

pub use check::{RunnerCheck, check_runners};
pub use control::{AskError, Request, request, serve as serve_control};
pub use engine::{Engine, EngineError, RunOptions, cores};
pub use events::Control;
pub use executor::read_metrics;
pub use gc::{GcHosts, GcOptions, GcReport, LocalGc};
pub use home::Home;
pub use inventory::{Inventory, InventoryError};
pub use job::merged_params;
pub use leaderboard::{Board, BoardEntry, DEFAULT_THRESHOLD, record_run, rows_for_run};
pub use ledger::Cost;
pub use plan::PlanRow;
pub use pool::{PoolGpu, PoolRunner};
pub use progress::{Bars, Plain, Progress, Quiet, Reporter};
pub use pull::Pulled;
pub use remote_gc::{HostGc, HostState};
pub use view::{RunSummary, RunView, StepView, fmt_secs};
