//! `tuna serve`: the daemon in the foreground (see [`crate::daemon`]).

use std::net::SocketAddr;
use std::path::Path;

use tuna_runners::StepEnv;

use super::args::Cli;
use super::exit::{Fail, OK};
use super::net_args::NetArgs;
use super::project::LimitArgs;
use crate::daemon::{ServeOptions, Tokens};

pub fn serve(
    cli: &Cli,
    listen: SocketAddr,
    tokens: Option<&Path>,
    limits: &LimitArgs,
    net: &NetArgs,
    pass_env: &[String],
) -> Result<u8, Fail> {
    let env = std::env::var("TUNA_SERVE_TOKENS").ok();
    let tokens =
        Tokens::load(tokens, env.as_deref()).map_err(|e| Fail::invalid(format!("error: {e}")))?;
    // Steps get a clean environment: the allowlist and what --pass-env names, never the
    // daemon's tokens or tuna's other variables.
    let step_env = StepEnv::Clean {
        pass: pass_env.to_vec(),
    };
    let tls = net
        .tls()
        .map_err(|e| Fail::invalid(format!("error: {e}")))?;
    let engine = super::open::open_engine_for_steps(cli, true, &step_env)?;
    // The runs the daemon drives are exported to MLflow live, as `tuna run` does.
    let tracker = crate::tracking::Tracker::start(
        engine.store.clone(),
        crate::tracking::process_env,
        Box::new(|run, r| match r {
            Ok(line) => tracing::info!(run = %run, "tracking: {line}"),
            Err(e) => tracing::warn!(run = %run, "{e}"),
        }),
    );
    let feed = tracker.feed(engine.reporter());
    let engine = engine.with_reporter(feed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::env(format!("error: {e}")))?;
    rt.block_on(crate::daemon::serve(
        engine,
        ServeOptions {
            listen,
            tokens,
            limits: limits.limits(),
            conns: net.limits(),
            tls,
        },
    ))
    .map_err(|e| Fail::env(format!("error: {e}")))?;
    // Driven runs' tasks are dropped with the runtime; their steps go on under tuna-shim.
    rt.shutdown_background();
    tracker.close();
    Ok(OK)
}
