//! The set-up of a fine-tuning run: settings checked, the model loaded (NF4 where asked) with
//! LoRA applied, the data tokenized, the optimizer, the batch plan and the learning-rate
//! schedule, and the fingerprint a checkpoint must agree with.

use std::path::Path;

use tch::Device;

use super::adamw::AdamW;
use super::batches::BatchPlan;
use super::data::{Dataset, load_jsonl};
use super::eval::EvalSet;
use super::schedule::Schedule;
use crate::ml::adapt::{apply_lora, lora_parameters, lora_targets, quantize_nf4};
use crate::ml::causal_lm::CausalLm;
use crate::ml::error::{MlError, MlResult};
use crate::ml::loader::load_causal_lm;
use crate::ml::tokenizer::TextTokenizer;
use crate::settings::{FinetuneConfig, Quantize};

/// A run ready to train: what every step uses.
pub(super) struct Training {
    pub(super) model: Box<dyn CausalLm>,
    pub(super) device: Device,
    pub(super) data: Dataset,
    pub(super) eval_set: Option<EvalSet>,
    pub(super) pad: i64,
    /// The modules LoRA adapts (for the adapter's config).
    pub(super) targets: Vec<String>,
    /// The names of the trained parameters, in the optimizer's order (checkpoints use them).
    pub(super) names: Vec<String>,
    pub(super) opt: AdamW,
    pub(super) plan: BatchPlan,
    /// Micro-batches per optimizer step.
    pub(super) accum: u64,
    pub(super) total_steps: u64,
    pub(super) schedule: Schedule,
    pub(super) fingerprint: String,
}

impl Training {
    /// Checks the settings and builds everything the steps need; `out_dir` is made.
    pub(super) fn set_up(
        config: &FinetuneConfig,
        model_dir: &Path,
        data_jsonl: &Path,
        eval_jsonl: Option<&Path>,
        out_dir: &Path,
    ) -> MlResult<Training> {
        config.validate()?;
        if config.eval_every.is_some() && eval_jsonl.is_none() {
            return Err(MlError::Setting {
                key: "eval_every".into(),
                message: "needs eval data to compute the loss on".into(),
            });
        }
        if let Some(n) = config.threads {
            tch::set_num_threads(n);
        }
        let device = config
            .device
            .resolve()
            .map_err(|message| MlError::Setting {
                key: "device".into(),
                message,
            })?;
        std::fs::create_dir_all(out_dir)
            .map_err(|e| MlError::io(format!("creating {}", out_dir.display()), e))?;

        let tok = TextTokenizer::from_model_dir(model_dir)?;
        let mut model = load_causal_lm(model_dir, config.dtype, device)?;
        let info = model.info().clone();
        if tok.vocab_size() as i64 > info.vocab_size {
            return Err(MlError::Tokenizer {
                path: model_dir.join("tokenizer.json"),
                message: format!(
                    "has {} tokens but the model only {}",
                    tok.vocab_size(),
                    info.vocab_size
                ),
            });
        }
        let eos = if config.append_eos {
            info.eos_token_id
        } else {
            None
        };
        let max_len = config.max_seq_len.min(info.max_positions as usize);
        let data = load_jsonl(data_jsonl, &tok, max_len, eos)?;
        let pad = info.pad_token_id.unwrap_or(0);
        let eval_set = match eval_jsonl {
            Some(path) => Some(EvalSet {
                data: load_jsonl(path, &tok, max_len, eos)?,
                batch_size: config.batch_size,
                pad,
                device,
            }),
            None => None,
        };

        if config.quantize == Quantize::Nf4 {
            quantize_nf4(model.as_mut(), config.double_quant);
        }
        apply_lora(model.as_mut(), &config.lora, config.seed)?;
        let targets = lora_targets(model.as_ref(), &config.lora);
        let named = lora_parameters(model.as_ref());
        let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
        let opt = AdamW::new(
            named.into_iter().map(|(_, t)| t).collect(),
            config.adam_beta1,
            config.adam_beta2,
            config.adam_eps,
            config.weight_decay,
        );

        let plan = BatchPlan::new(
            data.examples.iter().map(|e| e.ids.len()).collect(),
            config.batch_size,
            config.group_by_length,
            config.seed,
        );
        let accum = config.grad_accum as u64;
        let full_steps = (plan.per_epoch() * u64::from(config.epochs.max(1))).div_ceil(accum);
        let total_steps = config.max_steps.unwrap_or(full_steps);
        let warmup = if config.warmup_steps > 0 {
            config.warmup_steps
        } else {
            (config.warmup_ratio * total_steps as f64).ceil() as u64
        };
        let schedule = Schedule {
            peak: config.learning_rate,
            warmup,
            total: total_steps,
        };
        let fingerprint = fingerprint(config, model_dir, data_jsonl)?;
        Ok(Training {
            model,
            device,
            data,
            eval_set,
            pad,
            targets,
            names,
            opt,
            plan,
            accum,
            total_steps,
            schedule,
            fingerprint,
        })
    }
}

/// Settings, model folder and data contents: what a checkpoint must agree with.
fn fingerprint(config: &FinetuneConfig, model_dir: &Path, data: &Path) -> MlResult<String> {
    let bytes =
        std::fs::read(data).map_err(|e| MlError::io(format!("reading {}", data.display()), e))?;
    // The folder as resolved: an attempt reaches the same model through its own symlink.
    let model_dir = std::fs::canonicalize(model_dir).unwrap_or_else(|_| model_dir.to_path_buf());
    let text = format!("{}|{}|", config.fingerprint_value(), model_dir.display());
    let h = text
        .bytes()
        .chain(bytes)
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    Ok(format!("{h:016x}"))
}
