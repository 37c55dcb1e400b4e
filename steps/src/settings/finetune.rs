//! The settings of a fine-tuning run (a finetune step's `with:` mapping), with defaults and
//! range checks that name the offending key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::SettingError;
use super::lora::LoraConfig;
use super::precision::{DType, DeviceSpec};

/// Storage of the frozen base linear weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantize {
    /// Dense, in `dtype` (plain LoRA).
    #[default]
    None,
    /// 4-bit NormalFloat (QLoRA).
    Nf4,
}

/// Everything a run can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Adapter rank, alpha, dropout and target modules.
    pub lora: LoraConfig,
    /// `none` (LoRA) or `nf4` (QLoRA).
    pub quantize: Quantize,
    /// Quantize the NF4 block scales as well.
    pub double_quant: bool,
    /// Precision of the base model and activations.
    pub dtype: DType,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    pub device: DeviceSpec,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW β₁.
    pub adam_beta1: f64,
    /// AdamW β₂.
    pub adam_beta2: f64,
    /// AdamW ε.
    pub adam_eps: f64,
    /// Linear warm-up length in optimizer steps (wins over `warmup_ratio` when > 0).
    pub warmup_steps: u64,
    /// Warm-up as a share of all steps.
    pub warmup_ratio: f64,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(alias = "gradient_accumulation_steps")]
    pub grad_accum: usize,
    /// Global gradient-norm clip; 0 disables.
    pub max_grad_norm: f64,
    /// Passes over the data (ignored when `max_steps` is set).
    pub epochs: u32,
    /// Stop after this many optimizer steps (smoke tests).
    pub max_steps: Option<u64>,
    /// Longest tokenized example (prompt + completion); longer completions are cut, examples
    /// whose prompt alone is this long are skipped.
    pub max_seq_len: usize,
    /// Batch examples of similar length together (less padding).
    pub group_by_length: bool,
    /// Seed of adapter initialisation, data order and dropout.
    pub seed: u64,
    /// Write a checkpoint every N optimizer steps; 0 = only at the end.
    pub checkpoint_every: u64,
    /// How many checkpoints to keep.
    pub keep_checkpoints: usize,
    /// Compute the loss on the eval data (`eval_data`) every N optimizer steps, and after the
    /// last one; unset = only after the last step.
    pub eval_every: Option<u64>,
    /// Also write the base model with the adapter folded in (`merged/`).
    pub save_merged: bool,
    /// Append the model's end-of-sequence token to every completion.
    pub append_eos: bool,
    /// Relative training speed of GPU types, e.g. `{t4: 1.0, a100: 8.0}`.
    pub gpu_speeds: BTreeMap<String, f64>,
    /// This machine's entry in `gpu_speeds` (default: guessed from the CUDA device name, or
    /// `cpu`).
    pub gpu: Option<String>,
    /// libtorch CPU threads (default: libtorch's choice).
    pub threads: Option<i32>,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            lora: LoraConfig::default(),
            quantize: Quantize::None,
            double_quant: false,
            dtype: DType::F32,
            device: DeviceSpec("auto".into()),
            learning_rate: 2e-4,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            batch_size: 4,
            grad_accum: 1,
            max_grad_norm: 1.0,
            epochs: 1,
            max_steps: None,
            max_seq_len: 512,
            group_by_length: false,
            seed: 42,
            checkpoint_every: 0,
            keep_checkpoints: 2,
            eval_every: None,
            save_merged: false,
            append_eos: true,
            gpu_speeds: BTreeMap::new(),
            gpu: None,
            threads: None,
        }
    }
}

impl FinetuneConfig {
    /// Reads a `with:` mapping (YAML or JSON value); unknown keys are errors.
    pub fn from_value(v: serde_json::Value) -> Result<Self, SettingError> {
        check_eval_every(v.get("eval_every"))?;
        let cfg: FinetuneConfig = serde_json::from_value(v).map_err(SettingError::from_serde)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a workflow's `with:` mapping.
    pub fn from_yaml(v: &serde_yaml::Value) -> Result<Self, SettingError> {
        let every = v
            .get("eval_every")
            .and_then(|e| serde_json::to_value(e).ok());
        check_eval_every(every.as_ref())?;
        let cfg: FinetuneConfig =
            serde_yaml::from_value(v.clone()).map_err(SettingError::from_serde)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), SettingError> {
        let bad = |key: &str, message: String| {
            Err(SettingError {
                key: key.into(),
                message,
            })
        };
        if let Some((key, message)) = self.lora.problem() {
            return bad(key, message);
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(
                "learning_rate",
                format!("must be positive, found {}", self.learning_rate),
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if self.grad_accum == 0 {
            return bad("grad_accum", "must be at least 1".into());
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return bad("epochs", "must be at least 1 (or set max_steps)".into());
        }
        if self.max_steps == Some(0) {
            return bad("max_steps", "must be at least 1".into());
        }
        if self.max_seq_len < 2 {
            return bad("max_seq_len", "must be at least 2".into());
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(
                "warmup_ratio",
                format!("must be in [0, 1), found {}", self.warmup_ratio),
            );
        }
        if self.max_grad_norm < 0.0 || self.weight_decay < 0.0 {
            return bad(
                "max_grad_norm",
                "max_grad_norm and weight_decay must not be negative".into(),
            );
        }
        if !(0.0..1.0).contains(&self.adam_beta1) || !(0.0..1.0).contains(&self.adam_beta2) {
            return bad(
                "adam_beta1",
                "adam_beta1 and adam_beta2 must be in [0, 1)".into(),
            );
        }
        if let Some((k, v)) = self
            .gpu_speeds
            .iter()
            .find(|(_, v)| !(**v > 0.0 && v.is_finite()))
        {
            return bad(
                &format!("gpu_speeds.{k}"),
                format!("must be a positive number, found {v}"),
            );
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints", "must be at least 1".into());
        }
        if self.eval_every == Some(0) {
            return bad(
                "eval_every",
                "must be at least 1 (optimizer steps between evaluations)".into(),
            );
        }
        Ok(())
    }

    /// The settings that decide the numbers a run produces (a checkpoint from a run with other
    /// values cannot be resumed).
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    pub(crate) fn fingerprint_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serializes");
        if let Some(m) = v.as_object_mut() {
            for k in [
                "checkpoint_every",
                "keep_checkpoints",
                "eval_every",
                "save_merged",
                "threads",
                "gpu",
                "gpu_speeds",
            ] {
                m.remove(k);
            }
        }
        v
    }
}

/// `eval_every`, when given, is a whole number of steps of at least 1: said with its key
/// before serde's own message (which names no key) could be the one reported.
fn check_eval_every(v: Option<&serde_json::Value>) -> Result<(), SettingError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(n) if n.as_u64().is_some_and(|n| n >= 1) => Ok(()),
        Some(other) => Err(SettingError {
            key: "eval_every".into(),
            message: format!(
                "must be a whole number of optimizer steps, at least 1, found {other}"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_with_defaults_and_overrides() {
        let v: serde_yaml::Value = serde_yaml::from_str(
            "lora: {r: 16, targets: [fc1]}\nquantize: nf4\ndtype: bf16\nmax_steps: 20\ngpu_speeds: {t4: 1.0, a100: 8.0}\n",
        )
        .unwrap();
        let c = FinetuneConfig::from_yaml(&v).unwrap();
        assert_eq!(c.lora.r, 16);
        assert_eq!(c.lora.alpha, 16.0);
        assert_eq!(c.quantize, Quantize::Nf4);
        assert_eq!(c.dtype, DType::Bf16);
        assert_eq!(c.max_steps, Some(20));
        assert_eq!(c.epochs, 1);
        assert_eq!(c.gpu_speeds["a100"], 8.0);
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |y: &str| {
            FinetuneConfig::from_yaml(&serde_yaml::from_str(y).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("lora: {r: 0}").contains("lora.r"));
        assert!(bad("learning_rate: -1").contains("learning_rate"));
        assert!(bad("warmup_ratio: 1.5").contains("warmup_ratio"));
        assert!(bad("gpu_speeds: {a100: 0}").contains("gpu_speeds.a100"));
        assert!(bad("quantize: int8").contains("int8"));
        assert!(bad("epochs: 0").contains("epochs"));
        assert!(bad("batchsize: 4").contains("batchsize"));
    }

    #[test]
    fn eval_every_is_a_whole_number_of_at_least_one() {
        let parse = |y: &str| FinetuneConfig::from_yaml(&serde_yaml::from_str(y).unwrap());
        assert_eq!(parse("{}").unwrap().eval_every, None);
        assert_eq!(parse("eval_every: 5").unwrap().eval_every, Some(5));
        for y in [
            "eval_every: 0",
            "eval_every: -2",
            "eval_every: 1.5",
            "eval_every: often",
        ] {
            let e = parse(y).unwrap_err();
            assert_eq!(e.key, "eval_every", "{y}: {e}");
            assert!(e.message.contains("at least 1"), "{y}: {e}");
            let json = serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(y).unwrap());
            let e = FinetuneConfig::from_value(json.unwrap()).unwrap_err();
            assert_eq!(e.key, "eval_every", "{y}: {e}");
        }
    }

    #[test]
    fn eval_every_does_not_change_the_fingerprint() {
        let a = FinetuneConfig::default();
        let b = FinetuneConfig {
            eval_every: Some(3),
            ..FinetuneConfig::default()
        };
        assert_eq!(a.fingerprint_value(), b.fingerprint_value());
    }
}
