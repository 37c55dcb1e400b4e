//! Servers that service steps (`uses: model.serve`) leave running for the steps after them:
//! found through the step's `endpoint.json` output, checked for life, and stopped when the run
//! ends. A pid is trusted only while its command line is still a model server's, so a reused
//! pid is never signalled.

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The pid of the server a service step recorded in `outputs_dir`, while it still runs.
pub(crate) fn live_server(outputs_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(outputs_dir.join(tuna_steps::ENDPOINT)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = i32::try_from(v["pid"].as_i64()?).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_server = cmdline.split(|b| *b == 0).any(|arg| arg == b"serve-model");
    is_server.then_some(pid)
}

/// Stops the server of a service step (SIGTERM); whether one was running.
pub(crate) fn stop(outputs_dir: &Path) -> bool {
    match live_server(outputs_dir) {
        Some(pid) => kill(Pid::from_raw(pid), Signal::SIGTERM).is_ok(),
        None => false,
    }
}
