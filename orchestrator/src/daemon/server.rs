//! `tuna serve`: opens the engine, resumes runs that were running when the daemon stopped,
//! repairs half-started fires, then serves the HTTP API and dashboard, the control socket, and
//! the scheduler's tick (every second).
//!
//! SIGINT/SIGTERM stop the daemon without stopping the steps it runs (they run detached under
//! `tuna-shim`); the next `tuna serve` adopts them, as after a crash.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};

use super::api::{self, ApiError, App};
use super::auth::Tokens;
use super::clock::{Clock, SystemClock};
use super::dashboard;
use super::logs;
use super::middleware::{self, Gate};
use super::scheduler::Scheduler;
use super::service::Daemon;
use super::session::Sessions;
use super::upload::{self, MAX_MANIFEST_BODY, Uploads};
use crate::engine::Engine;

/// The largest request body accepted (a workflow file and its params).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub tokens: Tokens,
    /// Limits on submitted project files.
    pub limits: crate::project::Limits,
    /// Limits on connections (timeouts, the per-client cap).
    pub conns: super::listener::ConnLimits,
    /// TLS (from `--tls-cert`/`--tls-key`); plain HTTP without.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Builds the router (API + dashboard) over a daemon.
pub fn router(app: App, tokens: Tokens) -> Router {
    router_with(app, tokens, false)
}

/// As [`router`]; `tls`: the daemon speaks TLS (its session cookie is then `Secure`).
pub fn router_with(app: App, tokens: Tokens, tls: bool) -> Router {
    let gate = Gate {
        tokens: Arc::new(tokens),
        sessions: Arc::new(Sessions::default()),
        tls,
    };
    let manifest_body = || DefaultBodyLimit::max(MAX_MANIFEST_BODY);
    let protected = Router::new()
        .route(
            "/api/v1/runs",
            post(api::submit).layer(manifest_body()).get(api::list_runs),
        )
        .route(
            "/api/v1/blobs/missing",
            post(upload::missing).layer(manifest_body()),
        )
        // Streamed to disk whatever its size; the per-file limit is checked on the way.
        .route(
            "/api/v1/blobs/{digest}",
            put(upload::put_blob).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/metrics", get(upload::metrics))
        .route("/api/v1/runs/{id}", get(api::get_run))
        .route("/api/v1/runs/{id}/cancel", post(api::cancel))
        .route("/api/v1/runs/{id}/resume", post(api::resume))
        .route("/api/v1/runs/{id}/steps/{step}/log", get(logs::get_log))
        .route(
            "/api/v1/runs/{id}/steps/{step}/log/stream",
            get(logs::stream_log),
        )
        .route(
            "/api/v1/schedules",
            post(api::add_schedule)
                .layer(manifest_body())
                .get(api::list_schedules),
        )
        .route(
            "/api/v1/schedules/{name}",
            axum::routing::delete(api::remove_schedule),
        )
        .route("/api/v1/leaderboard", get(api::leaderboard))
        .route("/", get(dashboard::runs_page))
        .route("/runs/{id}", get(dashboard::run_page))
        .route("/runs/{id}/steps/{step}", get(dashboard::log_page))
        .route("/schedules", get(dashboard::schedules_page))
        .route("/leaderboard", get(dashboard::leaderboard_page))
        .route_layer(axum::middleware::from_fn_with_state(gate, middleware::auth));
    Router::new()
        .route("/api/v1/health", get(api::health))
        .merge(protected)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .with_state(app)
}

/// Runs the daemon until a signal. Prints `listening on http://ADDR` (`https://` with TLS) once
/// the socket is bound.
pub async fn serve(engine: Engine, opts: ServeOptions) -> Result<(), String> {
    let engine = Arc::new(engine);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::from_env());
    let scheduler = Scheduler::new(engine.store.clone(), clock);
    let app = Arc::new(Daemon::new(
        engine.clone(),
        scheduler,
        Uploads::new(opts.limits),
        tokio::runtime::Handle::current(),
    ));
    let control = tokio::spawn(crate::engine::serve_control(engine.clone()));

    let start = app.clone();
    let (resumed, repaired) = tokio::task::spawn_blocking(move || {
        let resumed = start.resume_interrupted().map_err(|e| e.to_string())?;
        let repaired = start.scheduler.repair(&start).map_err(|e| e.to_string())?;
        Ok::<_, String>((resumed, repaired))
    })
    .await
    .map_err(|e| e.to_string())??;
    for r in &resumed {
        eprintln!("resuming run {r} (it was running when the daemon stopped)");
    }
    for f in &repaired {
        eprintln!("repaired fire {}", f.id);
    }

    let ticker = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let a = app.clone();
                let r = tokio::task::spawn_blocking(move || a.scheduler.tick(&a)).await;
                match r {
                    Ok(Ok(fires)) => {
                        for f in fires {
                            tracing::info!(fire = %f.id, state = ?f.state, "fire");
                        }
                    }
                    Ok(Err(e)) => tracing::error!("scheduler: {e}"),
                    Err(e) => tracing::error!("scheduler task: {e}"),
                }
            }
        })
    };

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let router = router_with(app.clone(), opts.tokens, opts.tls.is_some());
    super::listener::serve(listener, router, opts.conns, opts.tls, shutdown_signal()).await;
    ticker.abort();
    control.abort();
    let _ = std::fs::remove_file(engine.home.control_socket());
    let _ = engine.store.flush();
    eprintln!(
        "stopped; {} running run(s) continue when tuna serve starts again",
        app.driving_count()
    );
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
