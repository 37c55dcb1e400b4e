//! `tuna track sync [RUN…]`: sends to the MLflow tracking server what it lacks of runs (kept
//! pending in the store while it was down or answered errors), with this process's `MLFLOW_*`
//! settings and each run's `tracking:` block.

use super::args::{Cli, TrackCommand};
use super::exit::{ENVIRONMENT, Fail, OK};
use super::open::open_engine;

pub fn track(cli: &Cli, cmd: &TrackCommand) -> Result<u8, Fail> {
    let TrackCommand::Sync { runs } = cmd;
    let engine = open_engine(cli, true)?;
    let store = &engine.store;
    let runs: Vec<String> = if runs.is_empty() {
        store
            .pending_exports()?
            .into_iter()
            .map(|p| p.run)
            .collect()
    } else {
        runs.clone()
    };
    if runs.is_empty() {
        eprintln!("no run is waiting to be sent to the tracking server");
        return Ok(OK);
    }
    let mut code = OK;
    for run in &runs {
        if store.run(run)?.is_none() {
            return Err(Fail::invalid(format!("error: no run `{run}`")));
        }
        match crate::tracking::sync(store, run, &crate::tracking::process_env) {
            Some(Ok(line)) => println!("{line}"),
            Some(Err(e)) => {
                eprintln!("error: {e}");
                code = ENVIRONMENT;
            }
            None => {
                return Err(Fail::invalid(format!(
                    "error: run {run}: no tracking server (set MLFLOW_TRACKING_URI, or `tracking: {{ mlflow: URI }}` in its workflow)"
                )));
            }
        }
    }
    Ok(code)
}
