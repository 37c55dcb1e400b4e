//! `tuna run` and `tuna resume`: the process that runs a workflow owns the store, serves the
//! control socket for other tuna processes, and turns signals into a clean stop.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::args::{Cli, ProgressMode};
use super::exit::{Fail, INTERRUPTED, OK, RUN_FAILED};
use super::open::{home, open_engine};
use crate::engine::{Control, Engine, RunOptions};
use crate::store::{RunStatus, Store};

/// One thread drives the run: the dispatcher and its executors hand events to each other
/// without waking another thread (blocking work goes to tokio's blocking pool).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// How the run to drive came to be.
enum Start {
    /// Made now from this workflow (the one stored with it: the dispatcher does not parse it
    /// again).
    New(Box<crate::dag::Dag>),
    Resumed,
}

/// Drives a run with the control socket served and signals turned into a clean stop; then
/// records its leaderboard rows.
/// `show`: print the results and the next commands at the end (not with `--progress quiet`).
/// `track`: export the run to MLflow while it runs (off with `--no-tracking`): a tracker thread
/// fed by the run's progress events, which first sends what earlier runs left pending.
fn drive(engine: Engine, run_id: &str, start: Start, show: bool, track: bool) -> Result<u8, Fail> {
    let (resumed, dag) = match start {
        Start::New(dag) => (false, Some(*dag)),
        Start::Resumed => (true, None),
    };
    let tracker = track.then(|| {
        crate::tracking::Tracker::start(
            engine.store.clone(),
            crate::tracking::process_env,
            Box::new(crate::tracking::print_result),
        )
    });
    let engine = match &tracker {
        Some(t) => {
            let feed = t.feed(engine.reporter());
            engine.with_reporter(feed)
        }
        None => engine,
    };
    let rt = runtime();
    let engine = Arc::new(engine);
    let status = rt.block_on({
        let engine = engine.clone();
        async move {
            let server = tokio::spawn(crate::engine::serve_control(engine.clone()));
            let signals = tokio::spawn(watch_signals(engine.clone()));
            let status = engine.drive_loaded(run_id, resumed, dag).await;
            server.abort();
            signals.abort();
            let _ = std::fs::remove_file(engine.home.control_socket());
            status
        }
    })?;
    leaderboard_line(&engine.store, run_id);
    if let Some(t) = tracker {
        t.close();
    }
    if show {
        eprint!("{}", super::summary::summary(&engine.store, run_id));
    }
    Ok(match status {
        RunStatus::Passed => OK,
        RunStatus::Failed => RUN_FAILED,
        RunStatus::Cancelled | RunStatus::Interrupted | RunStatus::Running => INTERRUPTED,
    })
}

/// Says how many leaderboard rows the run holds (the engine recorded them at its end).
fn leaderboard_line(store: &Store, run_id: &str) {
    let n = store
        .leader_rows()
        .map_or(0, |rows| rows.iter().filter(|r| r.run == run_id).count());
    if n > 0 {
        eprintln!("leaderboard: recorded {n} rows (`tuna leaderboard` shows them)");
    }
}

/// First SIGINT/SIGTERM: stop the run cleanly (steps cancelled, run resumable). Second: exit.
async fn watch_signals(engine: Arc<Engine>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if n == 0 {
            eprintln!("stopping: cancelling running steps (again to exit at once)");
            engine.control_all(Control::Interrupt);
        } else {
            std::process::exit(INTERRUPTED as i32);
        }
    }
}

pub fn run(
    cli: &Cli,
    file: &Path,
    params: &[(String, String)],
    jobs: Option<usize>,
    no_cache: bool,
    track: bool,
) -> Result<u8, Fail> {
    let (dag, text) = super::files::load(file)?;
    let home = home(cli);
    let new_home = !home.exists();
    let engine = open_engine(cli, false)?;
    let overrides: BTreeMap<String, String> = params.iter().cloned().collect();
    let opts = RunOptions {
        jobs: jobs.unwrap_or(0),
        no_cache,
        ..RunOptions::default()
    };
    runtime().block_on(engine.check_runner_gpus(&dag))?;
    runtime().block_on(engine.check_runner_stores(&dag))?;
    let id = engine.create_run(&dag, &text, &overrides, &opts)?;
    println!("{id}");
    if !matches!(cli.progress, ProgressMode::Quiet) {
        let made = if new_home { " (made now)" } else { "" };
        eprintln!("tuna home: {}{made}", home.root.display());
    }
    drive(
        engine,
        &id,
        Start::New(Box::new(dag)),
        !matches!(cli.progress, ProgressMode::Quiet),
        track,
    )
}

pub fn resume(
    cli: &Cli,
    run: Option<&str>,
    last: bool,
    jobs: Option<usize>,
    track: bool,
) -> Result<u8, Fail> {
    if let Some(c) = super::client::Client::from_cli(cli) {
        return resume_remote(&c, run, last);
    }
    let engine = open_engine(cli, false)?;
    let id = match (run, last) {
        (Some(r), _) if r != "last" => r.to_string(),
        _ => {
            engine
                .last_run()?
                .ok_or_else(|| Fail::invalid("error: there are no runs to resume"))?
                .id
        }
    };
    if engine
        .store
        .run(&id)?
        .is_some_and(|r| r.status == RunStatus::Passed)
    {
        println!("{id}");
        eprintln!("run {id} already passed; nothing to resume");
        engine.end_of_run(&id);
        leaderboard_line(&engine.store, &id);
        if track {
            crate::tracking::export_run(&engine.store, &id);
        }
        return Ok(OK);
    }
    let mut rec = engine.prepare_resume(&id)?;
    if let Some(j) = jobs {
        rec.jobs = j.max(1);
        engine.store.put_run(&rec)?;
    }
    println!("{id}");
    drive(
        engine,
        &id,
        Start::Resumed,
        !matches!(cli.progress, ProgressMode::Quiet),
        track,
    )
}

/// `tuna resume --server`: the daemon resumes the run; this prints its id.
fn resume_remote(c: &super::client::Client, run: Option<&str>, last: bool) -> Result<u8, Fail> {
    let id = match (run, last) {
        (Some(r), _) if r != "last" => r.to_string(),
        _ => c.get("/api/v1/runs?limit=1")?[0]["id"]
            .as_str()
            .ok_or_else(|| Fail::invalid("error: there are no runs to resume"))?
            .to_string(),
    };
    if !crate::daemon::valid_run_id(&id) {
        return Err(Fail::invalid(format!("error: `{id}` is not a run id")));
    }
    c.post(&format!("/api/v1/runs/{id}/resume"), &serde_json::json!({}))?;
    println!("{id}");
    eprintln!("resumed {id} on {}", c.base());
    Ok(OK)
}
