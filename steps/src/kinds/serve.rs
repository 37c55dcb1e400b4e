//! `uses: model.serve` — starts tuna's model server (`tuna-ml serve-model`) for the steps after
//! it: the server runs detached on a loopback port, the step passes once it listens, and its
//! output `endpoint.json` (`{"url", "pid", …}`) tells downstream steps where it is
//! (`helm.eval` takes it as `server:`). tuna stops the server when the run ends, and starts it
//! again on resume if it is gone while steps still need it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::context::StepContext;
use crate::error::StepError;
use crate::kind::{Metrics, StepKind, WithProblem};
use crate::kinds::model_server::{ServerOptions, start};
use crate::settings::SettingError;

/// The `model.serve` kind.
pub(crate) struct ModelServe;

/// What `model.serve` is told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeSettings {
    model: String,
    #[serde(default)]
    adapter: Option<String>,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    device: Option<String>,
    /// Loopback port; 0 (the default) takes a free one.
    #[serde(default)]
    port: u16,
    /// How long to wait for the server to listen.
    #[serde(default = "ready_s")]
    ready_timeout_s: u64,
}

fn ready_s() -> u64 {
    600
}

impl ServeSettings {
    fn from_value(v: &serde_json::Value) -> Result<Self, StepError> {
        let s: ServeSettings =
            serde_json::from_value(v.clone()).map_err(SettingError::from_serde)?;
        if let Some(d) = &s.dtype
            && !["fp32", "bf16", "float32", "bfloat16", "f32"].contains(&d.as_str())
        {
            return Err(StepError::with(
                "dtype",
                format!("`{d}`: write fp32 or bf16"),
            ));
        }
        if s.ready_timeout_s == 0 {
            return Err(StepError::with("ready_timeout_s", "must be at least 1"));
        }
        Ok(s)
    }
}

impl StepKind for ModelServe {
    fn name(&self) -> &'static str {
        "model.serve"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "tuna's model server for the steps after it (endpoint.json); stopped when the run ends"
    }

    fn check_with(&self, with: &serde_json::Value) -> Vec<WithProblem> {
        WithProblem::of(ServeSettings::from_value(with))
    }

    fn default_outputs(&self, _with: &serde_json::Value) -> Vec<String> {
        vec![ENDPOINT.into()]
    }

    fn path_keys(&self) -> &'static [&'static str] {
        &["model", "adapter"]
    }

    fn is_service(&self) -> bool {
        true
    }

    fn execute(&self, ctx: &StepContext) -> Result<Metrics, StepError> {
        let s = ServeSettings::from_value(&ctx.with)?;
        let log_path = ctx.state.join("serve-model.log");
        let model = ctx.resolve(Path::new(&s.model));
        let adapter = s.adapter.as_ref().map(|a| ctx.resolve(Path::new(a)));
        let opts = ServerOptions {
            model: &model,
            adapter: adapter.as_deref(),
            dtype: s.dtype.as_deref(),
            device: s.device.as_deref(),
            port: s.port,
            detached_log: Some(&log_path),
            timeout_setting: format!("`ready_timeout_s` ({} s)", s.ready_timeout_s),
        };
        let deadline = Instant::now() + Duration::from_secs(s.ready_timeout_s);
        // The child is not waited for: it runs on after this step, until tuna stops it.
        let (child, url) = start(&opts, &ctx.state, deadline)?;
        let endpoint = serde_json::json!({
            "url": url,
            "pid": child.id(),
            "model": model,
            "adapter": adapter,
            "log": log_path,
        });
        let path = ctx.work.join(ENDPOINT);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&endpoint).expect("json"),
        )
        .map_err(|e| StepError::io(path.display(), e))?;
        eprintln!("model server for {} listening on {url}", model.display());
        let port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        let mut m = Metrics::new();
        m.insert("port".into(), port.unwrap_or(0).into());
        Ok(m)
    }
}

/// The output that says where the server is.
pub const ENDPOINT: &str = "endpoint.json";

/// The URL in an `endpoint.json`.
pub(crate) fn endpoint_url(path: &Path) -> Result<String, StepError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StepError::Input(format!("{}: {e}", path.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| StepError::Input(format!("{}: {e}", path.display())))?;
    v["url"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| StepError::Input(format!("{}: no `url`", path.display())))
}
