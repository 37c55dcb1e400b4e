//! The fine-tuning loop: load → (NF4) → LoRA → resume from the newest checkpoint → steps of
//! accumulated micro-batches with clipping, AdamW and a warm-up/cosine schedule, with the loss
//! on the eval data every `eval_every` steps and after the last → adapter, optional merged
//! model and `metrics.json`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::Device;

use super::adamw::AdamW;
use super::batches::{BatchPlan, collate};
use super::checkpoint::{self, CheckpointState};
use super::data::load_jsonl;
use super::eval::EvalSet;
use super::metrics::{
    Metrics, cuda_process_bytes, guess_gpu_key, peak_rss_bytes, project, projected_seconds,
};
use super::schedule::Schedule;
use crate::ml::adapt::{apply_lora, lora_parameters, lora_targets, parameter_counts, quantize_nf4};
use crate::ml::error::{MlError, MlResult};
use crate::ml::loader::load_causal_lm;
use crate::ml::mode::{Mode, mix};
use crate::ml::peft::{save_adapter, save_merged};
use crate::ml::tokenizer::TextTokenizer;
use crate::settings::{FinetuneConfig, Quantize};

/// Progress of one optimizer step.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Steps completed (1-based).
    pub step: u64,
    /// Steps in the schedule.
    pub total_steps: u64,
    /// Mean completion-token loss of the step.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether a checkpoint was written after it.
    pub checkpointed: bool,
    /// The loss on the eval data after it, when it was evaluated.
    pub eval_loss: Option<f64>,
    /// Tokens trained per second of training so far in this attempt.
    pub tokens_per_s: f64,
}

/// Optional observers of a run.
#[derive(Default)]
pub struct FinetuneHooks<'a> {
    /// Checked after every step: when set, the run stops (as if killed) with
    /// [`MlError::Cancelled`]; checkpoints already written remain.
    pub cancel: Option<&'a AtomicBool>,
    /// Called after every step.
    pub on_step: Option<&'a (dyn Fn(&StepReport) + Sync)>,
}

/// Fine-tunes the model in `model_dir` on `data_jsonl`, writing into `out_dir`:
/// `adapter/` (PEFT layout), `merged/` (when asked), `checkpoints/`, `metrics.json`.
/// A run whose `out_dir` holds a checkpoint continues from it.
pub fn finetune(
    config: &FinetuneConfig,
    model_dir: &Path,
    data_jsonl: &Path,
    out_dir: &Path,
) -> MlResult<Metrics> {
    finetune_with(
        config,
        model_dir,
        data_jsonl,
        None,
        out_dir,
        &FinetuneHooks::default(),
    )
}

/// [`finetune`] with eval data (the same JSONL format; its loss is computed every
/// `config.eval_every` steps and after the last) and progress and cancellation hooks.
pub fn finetune_with(
    config: &FinetuneConfig,
    model_dir: &Path,
    data_jsonl: &Path,
    eval_jsonl: Option<&Path>,
    out_dir: &Path,
    hooks: &FinetuneHooks<'_>,
) -> MlResult<Metrics> {
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
    let mut opt = AdamW::new(
        named.into_iter().map(|(_, t)| t).collect(),
        config.adam_beta1,
        config.adam_beta2,
        config.adam_eps,
        config.weight_decay,
    );

    let mut plan = BatchPlan::new(
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

    let mut losses = Vec::new();
    let (mut eval_losses, mut eval_steps) = (Vec::new(), Vec::new());
    let mut start = 0;
    if let Some(dir) = checkpoint::latest(out_dir) {
        let state = checkpoint::restore(&dir, &names, &mut opt, &fingerprint)?;
        start = state.step;
        losses = state.losses;
        eval_losses = state.eval_losses;
        eval_steps = state.eval_steps;
    }

    let mut tokens_trained = 0u64;
    let mut train_seconds = 0.0;
    let mut step_seconds = Vec::new();
    let mut step_tokens = Vec::new();
    for step in start..total_steps {
        let t0 = Instant::now();
        let tokens_before = tokens_trained;
        let micro: Vec<Vec<usize>> = (step * accum..(step + 1) * accum)
            .map(|i| plan.batch(i))
            .collect();
        let batches: Vec<_> = micro
            .iter()
            .map(|idx| {
                collate(
                    &idx.iter().map(|&j| &data.examples[j]).collect::<Vec<_>>(),
                    pad,
                    device,
                )
            })
            .collect();
        let denom = batches.iter().map(|b| b.target_tokens).sum::<i64>().max(1) as f64;
        let mut loss_sum = 0.0;
        for (k, b) in batches.iter().enumerate() {
            let mode = Mode::Train {
                seed: mix(config.seed, step * accum + k as u64),
            };
            let loss = b.loss_sum(model.as_ref(), mode);
            (&loss / denom).backward();
            loss_sum += loss.double_value(&[]);
            tokens_trained += b.tokens as u64;
        }
        let grad_norm = opt.clip_grad_norm(config.max_grad_norm);
        let lr = schedule.lr(step);
        opt.step(lr);
        let loss = loss_sum / denom;
        if !loss.is_finite() {
            return Err(MlError::Setting {
                key: "learning_rate".into(),
                message: format!(
                    "loss became {loss} at step {}; lower the learning rate",
                    step + 1
                ),
            });
        }
        losses.push(loss);
        let took = t0.elapsed().as_secs_f64();
        train_seconds += took;
        step_seconds.push(took);
        step_tokens.push(tokens_trained - tokens_before);
        let done = step + 1;
        let eval_loss = eval_set
            .as_ref()
            .filter(|_| done == total_steps || config.eval_every.is_some_and(|n| done % n == 0))
            .map(|set| set.loss(model.as_ref()));
        if let Some(l) = eval_loss {
            eval_losses.push(l);
            eval_steps.push(done);
        }
        let checkpointed = config.checkpoint_every > 0
            && done % config.checkpoint_every == 0
            && done < total_steps;
        if checkpointed {
            let state = CheckpointState {
                step: done,
                losses: losses.clone(),
                eval_losses: eval_losses.clone(),
                eval_steps: eval_steps.clone(),
                fingerprint: fingerprint.clone(),
            };
            checkpoint::save(out_dir, &names, &opt, &state, config.keep_checkpoints)?;
        }
        if let Some(f) = hooks.on_step {
            f(&StepReport {
                step: done,
                total_steps,
                loss,
                lr,
                grad_norm,
                checkpointed,
                eval_loss,
                tokens_per_s: tokens_trained as f64 / train_seconds.max(1e-9),
            });
        }
        if hooks.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) && done < total_steps {
            return Err(MlError::Cancelled { step: done });
        }
    }

    save_adapter(
        model.as_ref(),
        &config.lora,
        &targets,
        &model_dir.display().to_string(),
        &out_dir.join("adapter"),
    )?;
    if config.save_merged {
        save_merged(model.as_ref(), model_dir, &out_dir.join("merged"))?;
    }

    let (trainable, total) = parameter_counts(model.as_ref());
    let base_linear_bytes = model.linears().iter().map(|(_, l)| l.base_bytes()).sum();
    let (peak, memory_kind) = match device {
        Device::Cuda(_) => (cuda_process_bytes().unwrap_or(0), "cuda_process"),
        _ => (peak_rss_bytes(), "cpu_rss"),
    };
    let tokens_per_s = if train_seconds > 0.0 {
        tokens_trained as f64 / train_seconds
    } else {
        0.0
    };
    let dataset_tokens = data.tokens();
    let full_tokens = dataset_tokens as f64 * f64::from(config.epochs.max(1));
    let projected_hours = projected_seconds(&step_seconds, &step_tokens, full_tokens) / 3600.0;
    let keys: Vec<&String> = config.gpu_speeds.keys().collect();
    let gpu = config.gpu.clone().or_else(|| match device {
        Device::Cuda(i) => guess_gpu_key(i, &keys),
        _ => Some("cpu".to_string()),
    });
    let metrics = Metrics {
        loss_first: losses.first().copied().unwrap_or(f64::NAN),
        loss_last: losses.last().copied().unwrap_or(f64::NAN),
        steps: losses.len() as u64,
        losses,
        eval_loss: eval_losses.last().copied(),
        eval_losses,
        eval_steps,
        total_steps,
        resumed_from_step: start,
        tokens_per_s,
        tokens_trained,
        train_seconds,
        step_seconds,
        step_tokens,
        peak_memory_bytes: peak,
        memory_kind: memory_kind.into(),
        base_linear_bytes,
        trainable_params: trainable,
        total_params: total,
        trainable_share: trainable as f64 / total.max(1) as f64,
        examples: data.examples.len(),
        skipped_examples: data.skipped,
        dataset_tokens,
        device: format!("{device:?}").to_ascii_lowercase(),
        projected_by_gpu: project(projected_hours, gpu.as_deref(), &config.gpu_speeds),
        gpu,
        projected_hours,
    };
    let path = out_dir.join("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(&metrics).expect("json"))
        .map_err(|e| MlError::io(format!("writing {}", path.display()), e))?;
    Ok(metrics)
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
