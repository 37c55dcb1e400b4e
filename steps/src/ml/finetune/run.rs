//! The fine-tuning loop: set-up (`setup.rs`: load → (NF4) → LoRA, data, optimizer) → resume
//! from the newest checkpoint → optimizer steps of accumulated micro-batches with clipping,
//! AdamW and a warm-up/cosine schedule, with the loss on the eval data every `eval_every` steps
//! and after the last, and checkpoints → adapter, optional merged model and `metrics.json`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tch::Device;

use super::batches::collate;
use super::checkpoint::{self, CheckpointState};
use super::metrics::{
    Metrics, cuda_process_bytes, guess_gpu_key, peak_rss_bytes, project, projected_seconds,
};
use super::setup::Training;
use crate::ml::adapt::parameter_counts;
use crate::ml::error::{MlError, MlResult};
use crate::ml::mode::{Mode, mix};
use crate::ml::peft::{save_adapter, save_merged};
use crate::settings::FinetuneConfig;

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
    let mut run = Training::set_up(config, model_dir, data_jsonl, eval_jsonl, out_dir)?;
    let mut so_far = run.resume(out_dir)?;
    for step in so_far.start..run.total_steps {
        let (loss, lr, grad_norm) = run.optimizer_step(config, step, &mut so_far)?;
        let done = step + 1;
        let eval_loss = run.evaluate(config, done, &mut so_far);
        let checkpointed = run.checkpoint(config, out_dir, done, &so_far)?;
        if let Some(f) = hooks.on_step {
            f(&StepReport {
                step: done,
                total_steps: run.total_steps,
                loss,
                lr,
                grad_norm,
                checkpointed,
                eval_loss,
                tokens_per_s: so_far.tokens_trained as f64 / so_far.train_seconds.max(1e-9),
            });
        }
        if hooks.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) && done < run.total_steps {
            return Err(MlError::Cancelled { step: done });
        }
    }
    run.finish(config, model_dir, out_dir, so_far)
}

/// What the steps of a run add up to: the losses (restored from a checkpoint, then one per
/// step), the eval losses and the steps they were taken at, and the tokens and time trained
/// in this attempt.
struct SoFar {
    /// The step the run starts from (a checkpoint's, else 0).
    start: u64,
    losses: Vec<f64>,
    eval_losses: Vec<f64>,
    eval_steps: Vec<u64>,
    tokens_trained: u64,
    train_seconds: f64,
    step_seconds: Vec<f64>,
    /// Tokens of each step this process ran (beside `step_seconds`).
    step_tokens: Vec<u64>,
}

impl Training {
    /// Where the run starts: the newest checkpoint in `out_dir` (its step, losses and the
    /// optimizer's state), else step 0.
    fn resume(&mut self, out_dir: &Path) -> MlResult<SoFar> {
        let mut so_far = SoFar {
            start: 0,
            losses: Vec::new(),
            eval_losses: Vec::new(),
            eval_steps: Vec::new(),
            tokens_trained: 0,
            train_seconds: 0.0,
            step_seconds: Vec::new(),
            step_tokens: Vec::new(),
        };
        if let Some(dir) = checkpoint::latest(out_dir) {
            let state = checkpoint::restore(&dir, &self.names, &mut self.opt, &self.fingerprint)?;
            so_far.start = state.step;
            so_far.losses = state.losses;
            so_far.eval_losses = state.eval_losses;
            so_far.eval_steps = state.eval_steps;
        }
        Ok(so_far)
    }

    /// One optimizer step (0-based `step`): its accumulated micro-batches forward and
    /// backward, clipping, AdamW at the schedule's rate. Returns the step's loss, rate and
    /// gradient norm before clipping; a loss that is not finite stops the run.
    fn optimizer_step(
        &mut self,
        config: &FinetuneConfig,
        step: u64,
        so_far: &mut SoFar,
    ) -> MlResult<(f64, f64, f64)> {
        let t0 = Instant::now();
        let accum = self.accum;
        let micro: Vec<Vec<usize>> = (step * accum..(step + 1) * accum)
            .map(|i| self.plan.batch(i))
            .collect();
        let batches: Vec<_> = micro
            .iter()
            .map(|idx| {
                collate(
                    &idx.iter()
                        .map(|&j| &self.data.examples[j])
                        .collect::<Vec<_>>(),
                    self.pad,
                    self.device,
                )
            })
            .collect();
        let denom = batches.iter().map(|b| b.target_tokens).sum::<i64>().max(1) as f64;
        let mut loss_sum = 0.0;
        let tokens_before = so_far.tokens_trained;
        for (k, b) in batches.iter().enumerate() {
            let mode = Mode::Train {
                seed: mix(config.seed, step * accum + k as u64),
            };
            let loss = b.loss_sum(self.model.as_ref(), mode);
            (&loss / denom).backward();
            loss_sum += loss.double_value(&[]);
            so_far.tokens_trained += b.tokens as u64;
        }
        let grad_norm = self.opt.clip_grad_norm(config.max_grad_norm);
        let lr = self.schedule.lr(step);
        self.opt.step(lr);
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
        so_far.losses.push(loss);
        let took = t0.elapsed().as_secs_f64();
        so_far.train_seconds += took;
        so_far.step_seconds.push(took);
        so_far
            .step_tokens
            .push(so_far.tokens_trained - tokens_before);
        Ok((loss, lr, grad_norm))
    }

    /// The loss on the eval data after step `done` (1-based), every `eval_every` steps and
    /// after the last, where there is eval data.
    fn evaluate(&self, config: &FinetuneConfig, done: u64, so_far: &mut SoFar) -> Option<f64> {
        let eval_loss = self
            .eval_set
            .as_ref()
            .filter(|_| {
                done == self.total_steps
                    || config.eval_every.is_some_and(|n| done.is_multiple_of(n))
            })
            .map(|set| set.loss(self.model.as_ref()));
        if let Some(l) = eval_loss {
            so_far.eval_losses.push(l);
            so_far.eval_steps.push(done);
        }
        eval_loss
    }

    /// A checkpoint after step `done` every `checkpoint_every` steps (not after the last,
    /// which the adapter stands for); whether one was written.
    fn checkpoint(
        &self,
        config: &FinetuneConfig,
        out_dir: &Path,
        done: u64,
        so_far: &SoFar,
    ) -> MlResult<bool> {
        let due = config.checkpoint_every > 0
            && done.is_multiple_of(config.checkpoint_every)
            && done < self.total_steps;
        if due {
            let state = CheckpointState {
                step: done,
                losses: so_far.losses.clone(),
                eval_losses: so_far.eval_losses.clone(),
                eval_steps: so_far.eval_steps.clone(),
                fingerprint: self.fingerprint.clone(),
            };
            checkpoint::save(
                out_dir,
                &self.names,
                &self.opt,
                &state,
                config.keep_checkpoints,
            )?;
        }
        Ok(due)
    }

    /// The end of a run: the adapter (and the merged model when asked), then the metrics,
    /// written to `metrics.json` and returned.
    fn finish(
        self,
        config: &FinetuneConfig,
        model_dir: &Path,
        out_dir: &Path,
        so_far: SoFar,
    ) -> MlResult<Metrics> {
        let (model, device) = (self.model, self.device);
        save_adapter(
            model.as_ref(),
            &config.lora,
            &self.targets,
            &model_dir.display().to_string(),
            &out_dir.join("adapter"),
        )?;
        if config.save_merged {
            save_merged(model.as_ref(), model_dir, &out_dir.join("merged"))?;
        }

        let SoFar {
            start,
            losses,
            eval_losses,
            eval_steps,
            tokens_trained,
            train_seconds,
            step_seconds,
            step_tokens,
        } = so_far;
        let total_steps = self.total_steps;
        let data = self.data;
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
}
