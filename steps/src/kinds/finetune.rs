//! `uses: finetune` — LoRA / QLoRA fine-tuning of a Hugging Face model folder on
//! prompt/completion JSONL (the ML core in `crate::ml`, feature `torch`). Checkpoints live in
//! the step's state folder, so a retried or resumed attempt continues from the last one; the
//! adapter (PEFT layout), the optional merged model, the checkpoints (when `checkpoint_every`
//! is set) and the full metrics are the outputs.

use crate::context::StepContext;
use crate::error::StepError;
use crate::kind::{Metrics, StepKind, WithProblem};
use crate::settings::FinetuneConfig;

/// The `finetune` kind.
pub(crate) struct Finetune;

/// Keys of `with:` that are not fine-tuning settings.
const OWN_KEYS: [&str; 2] = ["model", "data"];

/// The fine-tuning settings of a `with:` mapping (everything but `model` and `data`).
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
                None => out.push(WithProblem::new(
                    k,
                    match k {
                        "model" => "is required: a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)",
                        _ => "is required: a JSONL file of {\"prompt\", \"completion\"} lines",
                    },
                )),
            }
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
    let out = ctx.state.join("finetune");
    let report = |r: &StepReport| {
        eprintln!(
            "step {}/{} loss {:.4} lr {:.3e} grad-norm {:.3}{}",
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
    let m = finetune_with(&cfg, &model, &data, &out, &hooks)
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
