//! Experiment tracking: exporting tuna runs to an MLflow tracking server over its REST API.
//! Owns where to send (`config.rs`: the environment's `MLFLOW_*` variables and the workflow's
//! `tracking:` block), the REST client (`client.rs`), what a run and its steps become
//! (`export.rs`: one parent run, one nested run per step, found again by tag so a resume logs
//! into the same runs), a step's outputs as artifacts or tags and a `finetune` adapter in the
//! model registry (`artifacts.rs`), the live export while runs are driven, off the dispatcher's path, with
//! what could not be sent kept in the store and sent later (`live.rs`), and the git facts of
//! the workflow's folder (`git.rs`). A failure is one warning line; a run's result never
//! depends on it.

mod artifacts;
mod client;
mod config;
mod export;
mod git;
mod live;

pub use client::{Client, MlflowError};
pub use config::{Auth, Config};
pub use export::{Exported, Session, export};
pub use live::{Notify, Tracker, sync};

use crate::store::Store;

/// The process environment's value of `k`.
pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Prints a tracking result on stderr: where a run went, or one warning line.
pub fn print_result(_run: &str, r: Result<String, String>) {
    match r {
        Ok(line) => eprintln!("tracking: {line}"),
        Err(e) => eprintln!("warning: {e}"),
    }
}

/// Exports run `run_id` whole when tracking is configured (`tuna resume` of a passed run):
/// prints one line saying where, or one warning line when it failed (the run is then kept to
/// send later).
pub fn export_run(store: &Store, run_id: &str) {
    if let Some(r) = try_export_run(store, run_id) {
        print_result(run_id, r);
    }
}

/// Exports run `run_id` with the process environment's settings and the run's `tracking:`
/// block: `None` when neither names a server, else the line to show (where it went, or why
/// it failed).
pub fn try_export_run(store: &Store, run_id: &str) -> Option<Result<String, String>> {
    sync(store, run_id, &process_env)
}
