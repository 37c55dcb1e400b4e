//! The daemon (`tuna serve`): the HTTP API and dashboard over the engine in one process, cron
//! schedules, the leaderboard, and resuming runs after a restart.

mod api;
mod auth;
mod clock;
mod conn_watch;
mod dashboard;
mod fire_times;
mod html;
mod listener;
mod logs;
mod middleware;
mod names;
mod scheduler;
#[cfg(test)]
mod scheduler_tests;
mod server;
mod service;
mod session;
mod svg;
mod tls;
mod upload;

pub use auth::Tokens;
pub use clock::{Clock, FakeClock, SystemClock};
pub use fire_times::{fires_between, next_after, upcoming};
pub use listener::{ConnLimits, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_PER_CLIENT};
pub use names::{valid_run_id, valid_step, valid_workflow};
pub use scheduler::{Launcher, MISSED_GRACE_S, ScheduleView, Scheduler, fire_id};
pub use server::{MAX_BODY, ServeOptions, router, serve};
pub use service::{Daemon, DaemonError, Submission, Submitted};
pub use tls::acceptor as tls_acceptor;
pub use upload::{MAX_MANIFEST_BODY, UploadStats, Uploads};
