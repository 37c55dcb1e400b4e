//! Experiment tracking: exporting a tuna run to an MLflow tracking server over its REST API when
//! the run ends (`tuna run`, `tuna resume`). Owns where to send (`config.rs`: the environment's
//! `MLFLOW_*` variables and the workflow's `tracking:` block), the REST client (`client.rs`),
//! what a run and its steps become (`export.rs`: one parent run, one nested run per step, found
//! again by tag so a resume logs into the same runs) and the git facts of the workflow's folder
//! (`git.rs`). A failure is one warning line; the run's result never depends on it.

mod client;
mod config;
mod export;
mod git;

pub use client::{Client, MlflowError};
pub use config::{Auth, Config};
pub use export::{Exported, export};

use crate::store::Store;

/// Exports run `run_id` when tracking is configured (`tuna run`, `tuna resume`): prints one
/// line saying where, or one warning line when it failed.
pub fn export_run(store: &Store, run_id: &str) {
    match try_export_run(store, run_id) {
        Some(Ok(line)) => eprintln!("tracking: {line}"),
        Some(Err(e)) => eprintln!("warning: {e}"),
        None => {}
    }
}

/// Exports run `run_id` with the process environment's settings and the run's `tracking:`
/// block: `None` when neither names a server, else the line to show (where it went, or why
/// it failed).
pub fn try_export_run(store: &Store, run_id: &str) -> Option<Result<String, String>> {
    let env = |k: &str| std::env::var(k).ok();
    let run = store.run(run_id).ok()??;
    let cfg = match Config::resolve(&run, &env) {
        Ok(c) => c?,
        Err(e) => return Some(Err(format!("MLflow tracking skipped: {e}"))),
    };
    Some(match export(store, &run, &cfg) {
        Ok(x) => Ok(format!(
            "run {run_id} in MLflow experiment `{}` (MLflow run {}; steps sent: {})",
            cfg.experiment, x.parent, x.steps
        )),
        Err(e) => Err(format!(
            "MLflow tracking of run {run_id} failed ({e}); the run's result is unchanged"
        )),
    })
}
