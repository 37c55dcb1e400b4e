//! The `with:` mapping of `helm.eval`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::StepError;
use crate::settings::SettingError;

/// What `helm.eval` is told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HelmSettings {
    /// A Hugging Face model folder for tuna's model server.
    #[serde(default)]
    pub model: Option<String>,
    /// A PEFT adapter folder to load on top of `model`.
    #[serde(default)]
    pub adapter: Option<String>,
    /// A running server of HELM's HTTP model API, instead of `model`: its URL, or the
    /// `endpoint.json` a `model.serve` step wrote.
    #[serde(default)]
    pub server: Option<String>,
    /// HELM run entries without `:model=` (e.g. `simple_mcqa`, `mmlu:subject=anatomy`).
    #[serde(default = "entries")]
    pub entries: Vec<String>,
    /// HELM's `--max-eval-instances`.
    #[serde(default = "instances")]
    pub max_eval_instances: u32,
    /// HELM's `--suite`.
    #[serde(default = "suite")]
    pub suite: String,
    /// Stop the evaluation after this many seconds.
    #[serde(default = "timeout")]
    pub timeout_s: u64,
    /// The `helm-run` program (default: `$TUNA_HELM_RUN`, else `helm-run` on `PATH`).
    #[serde(default)]
    pub helm_run: Option<String>,
}

fn entries() -> Vec<String> {
    vec!["simple_mcqa".into()]
}
fn instances() -> u32 {
    10
}
fn suite() -> String {
    "tuna".into()
}
fn timeout() -> u64 {
    1800
}

impl HelmSettings {
    pub(crate) fn from_value(v: &serde_json::Value) -> Result<Self, StepError> {
        let s: HelmSettings =
            serde_json::from_value(v.clone()).map_err(SettingError::from_serde)?;
        match (&s.model, &s.server) {
            (None, None) => {
                return Err(StepError::with(
                    "model",
                    "name a model folder to serve (`model`, optional `adapter`) or a running server (`server: URL`)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(StepError::with(
                    "server",
                    "give either `server` or `model`, not both",
                ));
            }
            _ => {}
        }
        if s.adapter.is_some() && s.model.is_none() {
            return Err(StepError::with("adapter", "needs `model` (the base model)"));
        }
        if let Some(u) = &s.server
            && !(u.starts_with("http://") || u.starts_with("https://") || u.ends_with(".json"))
        {
            return Err(StepError::with(
                "server",
                format!("`{u}` is not an http(s) URL nor a `model.serve` step's endpoint.json"),
            ));
        }
        if s.entries.is_empty() {
            return Err(StepError::with(
                "entries",
                "name at least one HELM run entry",
            ));
        }
        if let Some(e) = s.entries.iter().find(|e| e.contains("model=")) {
            return Err(StepError::with(
                "entries",
                format!("`{e}`: leave out `model=`, tuna sets it"),
            ));
        }
        if s.max_eval_instances == 0 || s.timeout_s == 0 {
            return Err(StepError::with(
                "max_eval_instances",
                "max_eval_instances and timeout_s must be at least 1",
            ));
        }
        if s.suite.is_empty() || s.suite.contains('/') {
            return Err(StepError::with("suite", "must be a plain name"));
        }
        Ok(s)
    }

    /// The `helm-run` to start.
    pub(crate) fn helm_run(&self) -> Result<PathBuf, StepError> {
        if let Some(p) = &self.helm_run {
            return Ok(PathBuf::from(p));
        }
        if let Some(p) = std::env::var_os("TUNA_HELM_RUN") {
            return Ok(PathBuf::from(p));
        }
        crate::tools::on_path("helm-run").ok_or_else(|| {
            StepError::Context(
                "helm-run not found: install crfm-helm (scripts/setup-helm.sh makes .venv-helm) \
                 and put its bin folder on PATH, set TUNA_HELM_RUN, or set `with.helm_run`"
                    .into(),
            )
        })
    }
}
