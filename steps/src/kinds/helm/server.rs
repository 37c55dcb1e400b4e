//! tuna's model server as a child of the evaluation step: started on a free loopback port,
//! ready when it has written its address, stopped when the step is done.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::error::StepError;

/// A running `tuna-ml serve-model`.
pub(crate) struct ModelServer {
    pub url: String,
    child: Child,
}

impl ModelServer {
    /// Starts the server for `model` (+ `adapter`) and waits until it listens.
    pub(crate) fn start(
        model: &Path,
        adapter: Option<&Path>,
        state: &Path,
        deadline: Instant,
    ) -> Result<Self, StepError> {
        let ml = crate::tools::tuna_ml().ok_or_else(|| {
            StepError::Context(
                "serving the model needs `tuna-ml` (cargo build -p tuna-steps --features torch \
                 --bins), beside tuna or on PATH, or TUNA_ML"
                    .into(),
            )
        })?;
        std::fs::create_dir_all(state).map_err(|e| StepError::io(state.display(), e))?;
        let ready = state.join("server-url");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(&ml);
        cmd.arg("serve-model")
            .arg("--model")
            .arg(model)
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready);
        if let Some(a) = adapter {
            cmd.arg("--adapter").arg(a);
        }
        let child = cmd
            .spawn()
            .map_err(|e| StepError::Failed(format!("starting {}: {e}", ml.display())))?;
        let mut server = ModelServer {
            url: String::new(),
            child,
        };
        loop {
            if let Ok(url) = std::fs::read_to_string(&ready) {
                server.url = url.trim().to_string();
                return Ok(server);
            }
            if let Some(status) = server
                .child
                .try_wait()
                .map_err(|e| StepError::io("waiting for the model server", e))?
            {
                return Err(StepError::Failed(format!(
                    "the model server exited before listening ({status}); its error is above"
                )));
            }
            if Instant::now() >= deadline {
                return Err(StepError::Failed(
                    "the model server did not start within `timeout_s`".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        // The server keeps no state: stopping it hard loses nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
