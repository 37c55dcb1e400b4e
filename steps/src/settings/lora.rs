//! LoRA settings as a user writes them under `with: lora:` (rank, alpha, dropout, target
//! modules), with range checks; no libtorch needed.

use serde::{Deserialize, Serialize};

/// LoRA settings (`with: lora:` of a finetune step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    #[serde(default = "default_r")]
    pub r: i64,
    /// Scale numerator: the update is multiplied by `alpha / r`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Dropout on the adapter's input while training.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Module names (last path component) that get adapters; default: the architecture's MLP
    /// projections (`fc1`, `fc2` for OPT; `gate_proj`, `up_proj`, `down_proj` for Llama/Mistral).
    #[serde(default)]
    pub targets: Option<Vec<String>>,
}

fn default_r() -> i64 {
    8
}
fn default_alpha() -> f64 {
    16.0
}
fn default_dropout() -> f64 {
    0.05
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            r: default_r(),
            alpha: default_alpha(),
            dropout: default_dropout(),
            targets: None,
        }
    }
}

impl LoraConfig {
    /// A description of the first out-of-range value, if any.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.r < 1 {
            return Some(("lora.r", format!("must be at least 1, found {}", self.r)));
        }
        if self.alpha.is_nan() || self.alpha <= 0.0 {
            return Some((
                "lora.alpha",
                format!("must be positive, found {}", self.alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Some((
                "lora.dropout",
                format!("must be in [0, 1), found {}", self.dropout),
            ));
        }
        if self.targets.as_ref().is_some_and(|t| t.is_empty()) {
            return Some(("lora.targets", "must name at least one module".into()));
        }
        None
    }
}
