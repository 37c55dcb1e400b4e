//! tuna's model server as a child of the evaluation step (started by
//! [`crate::kinds::model_server::start`]), stopped when the step is done.

use std::path::Path;
use std::process::Child;
use std::time::Instant;

use crate::error::StepError;
use crate::kinds::model_server::{ServerOptions, start};

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
        let opts = ServerOptions {
            model,
            adapter,
            dtype: None,
            device: None,
            port: 0,
            detached_log: None,
            timeout_setting: "`timeout_s`".into(),
        };
        let (child, url) = start(&opts, state, deadline)?;
        Ok(ModelServer { url, child })
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        // The server keeps no state: stopping it hard loses nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
