//! `uses: finetune` — LoRA / QLoRA fine-tuning of a Hugging Face model folder on
//! prompt/completion JSONL (the ML core in `crate::ml`, feature `torch`). Checkpoints live in
//! the step's state folder, so a retried or resumed attempt continues from the last one; the
//! adapter (PEFT layout), the optional merged model, the checkpoints (when `checkpoint_every`
//! is set) and the full metrics are the outputs. With `eval_data` (e.g. data.prepare's
//! `val.jsonl`) the loss on it is computed every `eval_every` steps and after the last one:
//! `eval_losses`/`eval_steps` in `finetune.json`, the final value as the metric `eval_loss`.

use crate::context::StepContext;
use crate::error::StepError;
use crate::kind::{Metrics, StepKind, WithProblem};
use crate::settings::FinetuneConfig;

/// The `finetune` kind.
pub(crate) struct Finetune;

/// Keys of `with:` that are not fine-tuning settings: the files the step reads.
const OWN_KEYS: [&str; 3] = ["model", "data", "eval_data"];

/// The files a step cannot run without.
const REQUIRED: [&str; 2] = ["model", "data"];

/// The fine-tuning settings of a `with:` mapping (everything but the files).
fn settings(with: &serde_json::Value) -> Result<FinetuneConfig, StepError> {
    let mut rest = with.as_object().cloned().unwrap_or_default();
    for k in OWN_KEYS {
        rest.remove(k);
    }
    Ok(FinetuneConfig::from_value(serde_json::Value::Object(rest))?)
}

impl StepKind for Finetune {
    fn name(&self) -> &'static str {
        "finetune"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "LoRA/QLoRA fine-tuning with smoke-test projection (needs tuna-ml)"
    }

    fn check_with(&self, with: &serde_json::Value) -> Vec<WithProblem> {
        let mut out = Vec::new();
        if !with.is_object() {
            out.push(WithProblem::new("", "must be a mapping"));
            return out;
        }
        for k in OWN_KEYS {
            match with.get(k) {
                Some(v) if v.is_string() => {}
                Some(_) => out.push(WithProblem::new(k, "must be a path (a string)")),
                None if !REQUIRED.contains(&k) => {}
                None => out.push(WithProblem::new(
                    k,
                    match k {
                        "model" => "is required: a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)",
                        _ => "is required: a JSONL file of {\"prompt\", \"completion\"} lines",
                    },
                )),
            }
        }
        if with.get("eval_every").is_some() && with.get("eval_data").is_none() {
            out.push(WithProblem::new(
                "eval_every",
                "needs `eval_data`: a JSONL file of {\"prompt\", \"completion\"} lines to compute the loss on (data.prepare's val.jsonl)",
            ));
        }
        if let Err(e) = settings(with) {
            let (key, message) = match e {
                StepError::With { key, message } => (key, message),
                other => (String::new(), other.to_string()),
            };
            out.push(WithProblem::new(key, message));
        }
        out
    }

    fn default_outputs(&self, with: &serde_json::Value) -> Vec<String> {
        let mut out = vec!["adapter/".to_string(), "finetune.json".to_string()];
        if with.get("save_merged").and_then(|v| v.as_bool()) == Some(true) {
            out.push("merged/".into());
        }
        if with
            .get("checkpoint_every")
            .and_then(|v| v.as_u64())
            .is_some_and(|n| n > 0)
        {
            out.push("checkpoints/".into());
        }
        out
    }

    fn path_keys(&self) -> &'static [&'static str] {
        &OWN_KEYS
    }

    fn needs_torch(&self) -> bool {
        true
    }

    #[cfg(not(feature = "torch"))]
    fn execute(&self, _ctx: &StepContext) -> Result<Metrics, StepError> {
        Err(StepError::NeedsTorch(self.name().into()))
    }

    #[cfg(feature = "torch")]
    fn execute(&self, ctx: &StepContext) -> Result<Metrics, StepError> {
        run(ctx)
    }
}

#[cfg(feature = "torch")]
fn run(ctx: &StepContext) -> Result<Metrics, StepError> {
    use crate::ml::finetune::{FinetuneHooks, StepReport, finetune_with};

    let cfg = settings(&ctx.with)?;
    let (model, data) = (ctx.path("model")?, ctx.path("data")?);
    let eval_data = match ctx.with.get("eval_data") {
        Some(_) => Some(ctx.path("eval_data")?),
        None => None,
    };
    let out = ctx.state.join("finetune");
    let progress = std::sync::Mutex::new(crate::ProgressFile::new(ctx.progress.clone()));
    let report = |r: &StepReport| {
        if let Ok(mut p) = progress.lock() {
            p.update(&crate::StepProgress {
                done: r.step,
                total: Some(r.total_steps),
                unit: Some("steps".into()),
                rate: Some(r.tokens_per_s),
                rate_unit: Some("tokens/s".into()),
                message: Some(format!("loss {:.4}", r.loss)),
            });
        }
        let eval = r
            .eval_loss
            .map(|l| format!(" eval-loss {l:.4}"))
            .unwrap_or_default();
        eprintln!(
            "step {}/{} loss {:.4} lr {:.3e} grad-norm {:.3}{eval}{}",
            r.step,
            r.total_steps,
            r.loss,
            r.lr,
            r.grad_norm,
            if r.checkpointed { " (checkpoint)" } else { "" }
        );
    };
    let hooks = FinetuneHooks {
        cancel: None,
        on_step: Some(&report),
    };
    let m = finetune_with(&cfg, &model, &data, eval_data.as_deref(), &out, &hooks)
        .map_err(|e| StepError::Failed(e.to_string()))?;
    if m.resumed_from_step > 0 {
        eprintln!(
            "resumed from the checkpoint at step {}",
            m.resumed_from_step
        );
    }
    let mut outputs = vec!["adapter"];
    if cfg.save_merged {
        outputs.push("merged");
    }
    for name in outputs {
        move_dir(&out.join(name), &ctx.work.join(name))?;
    }
    if cfg.checkpoint_every > 0 {
        // The checkpoints stay in the state folder for a retry to continue from; the output
        // shares their files.
        link_tree(&out.join("checkpoints"), &ctx.work.join("checkpoints"))?;
    }
    let full = serde_json::to_value(&m).expect("metrics serialize");
    let text = serde_json::to_string_pretty(&full).expect("metrics serialize");
    std::fs::write(ctx.work.join("finetune.json"), text)
        .map_err(|e| StepError::io("writing finetune.json", e))?;
    // Gates and the leaderboard read numbers: per-step lists stay in finetune.json.
    Ok(full
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.is_number() || v.is_boolean())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// Moves a finished folder from the state folder into the work folder (same file system).
#[cfg(feature = "torch")]
fn move_dir(from: &std::path::Path, to: &std::path::Path) -> Result<(), StepError> {
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(|e| StepError::io(format!("{}", to.display()), e))?;
    }
    std::fs::rename(from, to)
        .map_err(|e| StepError::io(format!("moving {} to {}", from.display(), to.display()), e))
}

/// Recreates the folder `from` at `to` with hard links to its files.
#[cfg(feature = "torch")]
fn link_tree(from: &std::path::Path, to: &std::path::Path) -> Result<(), StepError> {
    let err = |p: &std::path::Path, e| StepError::io(p.display(), e);
    std::fs::create_dir_all(to).map_err(|e| err(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| err(from, e))? {
        let entry = entry.map_err(|e| err(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| err(&src, e))?.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(|e| err(&src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(with: serde_json::Value) -> Vec<(String, String)> {
        Finetune
            .check_with(&with)
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    #[test]
    fn eval_data_is_an_optional_path_and_eval_every_needs_it() {
        let base = serde_json::json!({"model": "m/", "data": "train.jsonl"});
        assert!(problems(base.clone()).is_empty());
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            problems(v)
        };
        assert!(with(serde_json::json!({"eval_data": "val.jsonl"})).is_empty());
        assert!(with(serde_json::json!({"eval_data": "val.jsonl", "eval_every": 2})).is_empty());
        let p = with(serde_json::json!({"eval_data": 3}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "eval_data");
        assert!(p[0].1.contains("path"), "{p:?}");
        let p = with(serde_json::json!({"eval_every": 2}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "eval_every");
        assert!(p[0].1.contains("needs `eval_data`"), "{p:?}");
        let p = with(serde_json::json!({"eval_data": "val.jsonl", "eval_every": 0}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "eval_every");
        assert!(p[0].1.contains("at least 1"), "{p:?}");
        assert!(Finetune.path_keys().contains(&"eval_data"));
    }
}
