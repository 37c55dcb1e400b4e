//! The `with:` mapping of `data.prepare`, read strictly (unknown keys are errors).

use serde::Deserialize;

use crate::error::StepError;

/// What `data.prepare` is told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrepareSettings {
    /// The JSONL file to read.
    pub input: String,
    /// A `tokenizer.json` or a model folder holding one (needed by `max_tokens` and for token
    /// statistics).
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Drop examples whose prompt + completion has more tokens.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Drop exact duplicates (default true).
    #[serde(default = "yes")]
    pub dedup: bool,
    /// Drop near-duplicates whose estimated Jaccard similarity (word 3-grams) is at least this;
    /// 1.0 (the default) keeps them.
    #[serde(default = "one")]
    pub dedup_threshold: f64,
    /// Share of examples held out into `val.jsonl`.
    #[serde(default)]
    pub val_fraction: f64,
    /// Seed of the validation split.
    #[serde(default = "seed")]
    pub seed: u64,
    /// Field of the prompt in each line.
    #[serde(default = "prompt")]
    pub prompt_field: String,
    /// Field of the completion in each line.
    #[serde(default = "completion")]
    pub completion_field: String,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn seed() -> u64 {
    42
}
fn prompt() -> String {
    "prompt".into()
}
fn completion() -> String {
    "completion".into()
}

impl PrepareSettings {
    pub(crate) fn from_value(v: &serde_json::Value) -> Result<Self, StepError> {
        let s: PrepareSettings =
            serde_json::from_value(v.clone()).map_err(crate::settings::SettingError::from_serde)?;
        if !(s.dedup_threshold > 0.0 && s.dedup_threshold <= 1.0) {
            return Err(StepError::with(
                "dedup_threshold",
                format!("must be in (0, 1], found {}", s.dedup_threshold),
            ));
        }
        if !(0.0..0.5).contains(&s.val_fraction) {
            return Err(StepError::with(
                "val_fraction",
                format!("must be in [0, 0.5), found {}", s.val_fraction),
            ));
        }
        if s.max_tokens.is_some() && s.tokenizer.is_none() {
            return Err(StepError::with(
                "max_tokens",
                "needs `tokenizer` (a tokenizer.json or a model folder) to count tokens",
            ));
        }
        if s.max_tokens == Some(0) {
            return Err(StepError::with("max_tokens", "must be at least 1"));
        }
        Ok(s)
    }

    /// The near-duplicate threshold, when near-duplicates are dropped.
    pub(crate) fn near_threshold(&self) -> Option<f64> {
        (self.dedup_threshold < 1.0).then_some(self.dedup_threshold)
    }
}
