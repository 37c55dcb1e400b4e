//! `uses: helm.eval` — evaluates a model with HELM (crfm-helm's `helm-run`) over HELM's HTTP
//! model API: either tuna's own model server started for the step (`model`, optional
//! `adapter`: `tuna-ml serve-model` on a free loopback port, stopped afterwards) or a server
//! that already runs (`server: URL`). Each run entry's scores become metrics named
//! `ENTRY_METRIC` (e.g. `simple_mcqa_exact_match`), and HELM's output folder is the step's
//! output.

mod server;
mod settings;
mod stats;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::context::StepContext;
use crate::error::StepError;
use crate::kind::{Metrics, StepKind, WithProblem};
use server::ModelServer;
use settings::HelmSettings;

/// The `helm.eval` kind.
pub(crate) struct HelmEval;

/// HELM's built-in deployment for a model behind `HELM_HTTP_MODEL_BASE_URL`.
const DEPLOYMENT: &str = "neurips/local";

impl StepKind for HelmEval {
    fn name(&self) -> &'static str {
        "helm.eval"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "HELM run entries against tuna's model server (or any server of HELM's HTTP model API)"
    }

    fn check_with(&self, with: &serde_json::Value) -> Vec<WithProblem> {
        WithProblem::of(HelmSettings::from_value(with))
    }

    fn default_outputs(&self, _with: &serde_json::Value) -> Vec<String> {
        vec!["helm/".into()]
    }

    fn path_keys(&self) -> &'static [&'static str] {
        &["model", "adapter"]
    }

    fn execute(&self, ctx: &StepContext) -> Result<Metrics, StepError> {
        let s = HelmSettings::from_value(&ctx.with)?;
        let helm_run = s.helm_run()?;
        let deadline = Instant::now() + Duration::from_secs(s.timeout_s);
        let (url, _server) = match (&s.server, &s.model) {
            (Some(url), _) if url.ends_with(".json") => (
                crate::kinds::serve::endpoint_url(&ctx.resolve(Path::new(url)))?,
                None,
            ),
            (Some(url), _) => (url.trim_end_matches('/').to_string(), None),
            (None, Some(model)) => {
                let adapter = s.adapter.as_ref().map(|a| ctx.resolve(Path::new(a)));
                let server = ModelServer::start(
                    &ctx.resolve(Path::new(model)),
                    adapter.as_deref(),
                    &ctx.state,
                    deadline,
                )?;
                (server.url.clone(), Some(server))
            }
            (None, None) => unreachable!("settings require model or server"),
        };
        eprintln!("evaluating {url} with HELM: {}", s.entries.join(", "));
        let nltk = nltk_stub(&ctx.state)?;
        let out = ctx.work.join("helm");
        let mut cmd = Command::new(&helm_run);
        cmd.arg("--run-entries")
            .args(s.entries.iter().map(|e| format!("{e}:model={DEPLOYMENT}")))
            .args(["--suite", &s.suite])
            .args(["--max-eval-instances", &s.max_eval_instances.to_string()])
            .arg("--output-path")
            .arg(&out)
            .arg("--local-path")
            .arg(ctx.state.join("prod_env"))
            .env("HELM_HTTP_MODEL_BASE_URL", &url)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_DATASETS_OFFLINE", "1")
            .env("NLTK_DATA", &nltk);
        run_until(cmd, deadline, &helm_run)?;
        stats::collect(&out.join("runs").join(&s.suite), &s.entries)
    }
}

/// Runs `cmd` (its output goes to the step's log), killing it at `deadline`.
fn run_until(mut cmd: Command, deadline: Instant, prog: &Path) -> Result<(), StepError> {
    let mut child = cmd
        .spawn()
        .map_err(|e| StepError::Failed(format!("starting {}: {e}", prog.display())))?;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| StepError::io("waiting for helm-run", e))?
        {
            return if status.success() {
                Ok(())
            } else {
                Err(StepError::Failed(format!("helm-run failed ({status})")))
            };
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StepError::Failed(
                "helm-run did not finish within `timeout_s`".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// NLTK's sentence splitter data that some HELM metrics load, as the empty files that make it
/// work offline (English punkt parameters are not needed for the scores HELM computes here).
fn nltk_stub(state: &Path) -> Result<std::path::PathBuf, StepError> {
    let root = state.join("nltk_data");
    let dir = root.join("tokenizers/punkt_tab/english");
    std::fs::create_dir_all(&dir).map_err(|e| StepError::io(dir.display(), e))?;
    for f in [
        "collocations.tab",
        "sent_starters.txt",
        "abbrev_types.txt",
        "ortho_context.tab",
    ] {
        std::fs::write(dir.join(f), "").map_err(|e| StepError::io(f, e))?;
    }
    Ok(root)
}
