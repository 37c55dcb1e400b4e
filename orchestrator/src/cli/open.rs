//! Opening what a command works on: the home (`--home`, `$TUNA_HOME`, or found from the
//! current folder) and the engine (store, artifacts, runners) with the progress reporter the
//! command asked for. Shared by every command that reads or drives runs.

use std::io::IsTerminal;
use std::sync::Arc;

use tuna_runners::StepEnv;

use super::args::{Cli, ProgressMode};
use super::exit::Fail;
use crate::engine::{Bars, Engine, Home, Inventory, Plain, Quiet, Reporter};
use crate::store::{Store, StoreError};

/// The home of a command: `--home`, else `$TUNA_HOME`, else found from the current folder
/// ([`Home::discover`]).
pub fn home(cli: &Cli) -> Home {
    if let Some(h) = &cli.home {
        return Home {
            root: std::path::absolute(h).unwrap_or_else(|_| h.clone()),
        };
    }
    Home::discover(&std::env::current_dir().unwrap_or_default())
}

fn reporter(cli: &Cli, quiet: bool) -> Arc<dyn Reporter> {
    match cli.progress {
        _ if quiet => Arc::new(Quiet),
        ProgressMode::Quiet => Arc::new(Quiet),
        ProgressMode::Plain => Arc::new(Plain),
        ProgressMode::Bars => Arc::new(Bars::new()),
        ProgressMode::Auto if std::io::stderr().is_terminal() => Arc::new(Bars::new()),
        ProgressMode::Auto => Arc::new(Plain),
    }
}

/// Opens the engine (store, artifacts, runners) for a command; its steps inherit this
/// process's environment less tuna's own variables.
pub fn open_engine(cli: &Cli, quiet: bool) -> Result<Engine, Fail> {
    open_engine_for_steps(cli, quiet, &StepEnv::Inherit)
}

/// [`open_engine`] on the home's store that the command opened already.
pub fn open_engine_on(cli: &Cli, store: Store, quiet: bool) -> Result<Engine, Fail> {
    let inventory = inventory(cli)?;
    Engine::open_on(
        home(cli),
        store,
        &inventory,
        reporter(cli, quiet),
        &StepEnv::Inherit,
    )
    .map_err(Fail::from)
}

fn inventory(cli: &Cli) -> Result<Inventory, Fail> {
    Inventory::discover(cli.runners.as_deref()).map_err(|e| Fail::invalid(format!("error: {e}")))
}

/// [`open_engine`], with steps starting from `step_env`.
pub fn open_engine_for_steps(cli: &Cli, quiet: bool, step_env: &StepEnv) -> Result<Engine, Fail> {
    let inventory = inventory(cli)?;
    Engine::open(home(cli), &inventory, reporter(cli, quiet), step_env).map_err(|e| match e {
        crate::engine::EngineError::Store(StoreError::Locked { pid, .. }) => Fail::env(format!(
            "error: another tuna process (pid {pid}) is working in this home; wait for it, or use `tuna status`/`tuna cancel` to reach it"
        )),
        e => e.into(),
    })
}
