//! Starting tuna's model server (`tuna-ml serve-model`) from a step, for `model.serve` (a
//! detached server that outlives the step) and `helm.eval` (a child for the evaluation): on a
//! loopback port, ready once it has written its address to a file in the step's state folder.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::StepError;
use crate::settings::{DType, ServeModelArgs};

/// What to serve, and how.
pub(crate) struct ServerOptions<'a> {
    pub model: &'a Path,
    pub adapter: Option<&'a Path>,
    pub dtype: Option<&'a str>,
    pub device: Option<&'a str>,
    /// Loopback port; 0 takes a free one.
    pub port: u16,
    /// `Some(log)`: the server runs in its own process group (it outlives the step) and writes
    /// to `log`; `None`: it writes to the step's log and is the step's child.
    pub detached_log: Option<&'a Path>,
    /// The setting that bounds the wait, for the error (`ready_timeout_s (600 s)`).
    pub timeout_setting: String,
}

/// Starts the server and waits until it listens (or exits, or `deadline` passes: then it is
/// stopped): the child and its URL.
pub(crate) fn start(
    o: &ServerOptions<'_>,
    state: &Path,
    deadline: Instant,
) -> Result<(Child, String), StepError> {
    let ml = crate::tools::tuna_ml().ok_or_else(|| {
        StepError::Context(
            "the model server runs in `tuna-ml` (cargo build -p tuna-steps --features torch \
             --bins): not found beside tuna, on PATH, nor at $TUNA_ML"
                .into(),
        )
    })?;
    std::fs::create_dir_all(state).map_err(|e| StepError::io(state.display(), e))?;
    let ready = state.join("server-url");
    let _ = std::fs::remove_file(&ready);
    let dtype = match o.dtype {
        Some(d) => serde_json::from_value(serde_json::Value::String(d.to_string()))
            .map_err(|_| StepError::with("dtype", format!("`{d}`: write fp32 or bf16")))?,
        None => DType::default(),
    };
    let args = ServeModelArgs {
        model: o.model.to_path_buf(),
        adapter: o.adapter.map(Path::to_path_buf),
        listen: format!("127.0.0.1:{}", o.port),
        port: None,
        dtype,
        device: o.device.unwrap_or("auto").to_string(),
        ready_file: Some(ready.clone()),
    };
    let mut cmd = Command::new(&ml);
    cmd.arg("serve-model").args(args.to_args());
    if let Some(log_path) = o.detached_log {
        let log =
            std::fs::File::create(log_path).map_err(|e| StepError::io(log_path.display(), e))?;
        let log2 = log.try_clone().map_err(|e| StepError::io("log", e))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        // Its own process group: the server outlives this step's process (group).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| StepError::Failed(format!("starting {}: {e}", ml.display())))?;
    let where_log = |sep: &str| match o.detached_log {
        Some(p) => format!(
            "{sep}{}",
            std::fs::read_to_string(p).unwrap_or_default().trim_end()
        ),
        None => "; its error is above".to_string(),
    };
    loop {
        if let Ok(url) = std::fs::read_to_string(&ready) {
            return Ok((child, url.trim().to_string()));
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| StepError::io("waiting for the model server", e))?
        {
            return Err(StepError::Failed(format!(
                "the model server exited before listening ({status}){}",
                where_log(":\n")
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = o
                .detached_log
                .map(|p| format!(" (its log: {})", p.display()))
                .unwrap_or_default();
            return Err(StepError::Failed(format!(
                "the model server did not listen within {}{log}",
                o.timeout_setting
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
