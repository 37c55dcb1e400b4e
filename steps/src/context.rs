//! What a built-in step is given: its rendered `with:` mapping and its folders, read from the
//! environment tuna sets for every step (`TUNA_STEP_WITH`, `TUNA_OUTPUTS`, `TUNA_STATE`,
//! `TUNA_METRICS`, `TUNA_PROGRESS`).

use std::path::{Path, PathBuf};

use crate::error::StepError;

/// Numbers a step reports (`$TUNA_METRICS`): they feed gates, the leaderboard and tracking.
pub type Metrics = serde_json::Map<String, serde_json::Value>;

/// One attempt of a built-in step.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The kind's name.
    pub kind: String,
    /// The `with:` mapping with every `${{ … }}` already replaced.
    pub with: serde_json::Value,
    /// The work folder: outputs are written here (relative paths in `with` resolve here too).
    pub work: PathBuf,
    /// A folder kept across the attempts of this step in this run (checkpoints live here).
    pub state: PathBuf,
    /// The metrics file tuna reads after the step.
    pub metrics: PathBuf,
    /// The progress file tuna reads while the step runs (`$TUNA_PROGRESS`), when it set one.
    pub progress: Option<PathBuf>,
}

impl StepContext {
    /// The context tuna's runner set up (`TUNA_STEP_KIND`, `TUNA_STEP_WITH`, …).
    pub fn from_env() -> Result<Self, StepError> {
        let var = |k: &str| {
            std::env::var(k).map_err(|_| {
                StepError::Context(format!(
                    "${k} is not set: built-in steps run under `tuna run`, which sets it"
                ))
            })
        };
        let with = var("TUNA_STEP_WITH")?;
        let with = serde_json::from_str(&with)
            .map_err(|e| StepError::Context(format!("$TUNA_STEP_WITH is not JSON: {e}")))?;
        let work = PathBuf::from(var("TUNA_OUTPUTS")?);
        let state = std::env::var_os("TUNA_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| work.join(".state"));
        Ok(StepContext {
            kind: var("TUNA_STEP_KIND")?,
            with,
            work,
            state,
            metrics: PathBuf::from(var("TUNA_METRICS")?),
            progress: std::env::var_os("TUNA_PROGRESS").map(PathBuf::from),
        })
    }

    /// A required string setting.
    pub fn str(&self, key: &str) -> Result<&str, StepError> {
        self.with
            .get(key)
            .and_then(|v| v.as_str())
            .ok_or_else(|| StepError::with(key, "is required (a string)"))
    }

    /// A path setting, resolved against the work folder when relative.
    pub fn path(&self, key: &str) -> Result<PathBuf, StepError> {
        Ok(self.resolve(Path::new(self.str(key)?)))
    }

    /// `p` against the work folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.work.join(p)
        }
    }

    /// Writes `metrics` to the metrics file.
    pub fn write_metrics(&self, metrics: &Metrics) -> Result<(), StepError> {
        let text = serde_json::to_string_pretty(metrics).expect("metrics serialize");
        std::fs::write(&self.metrics, text)
            .map_err(|e| StepError::io(format!("writing {}", self.metrics.display()), e))
    }
}
