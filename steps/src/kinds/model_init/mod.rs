//! `uses: model.init` — a randomly initialised OPT or Llama model folder in the Hugging Face layout
//! (`config.json`, `model.safetensors`, `tokenizer.json` trained as byte-level BPE on a
//! corpus), for exercising a pipeline end to end without downloading weights. Deterministic
//! for a seed; needs no libtorch.

mod bpe;
mod llama_weights;
mod opt_weights;
mod safetensors;

use std::path::Path;

use serde::Deserialize;

use crate::context::StepContext;
use crate::error::StepError;
use crate::kind::{Metrics, StepKind, WithProblem};

/// The `model.init` kind.
pub(crate) struct ModelInit;

/// The shape of the model to make.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InitSettings {
    /// `opt` (default) or `llama`.
    #[serde(default = "opt")]
    pub architecture: String,
    /// A JSONL (prompt/completion or text lines) or plain text file the tokenizer learns from.
    pub corpus: String,
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub layers: usize,
    #[serde(default = "d_heads")]
    pub heads: usize,
    #[serde(default = "d_ffn")]
    pub ffn_dim: usize,
    #[serde(default = "d_positions")]
    pub max_positions: usize,
    /// Embedding width when it differs from `hidden_size` (OPT-350m's `project_in`/`out`).
    #[serde(default)]
    pub word_embed_proj_dim: Option<usize>,
    /// Post-LayerNorm blocks, as in OPT-350m (default: pre-LN). OPT only.
    #[serde(default)]
    pub post_ln: bool,
    /// Key/value heads of grouped-query attention (default: `heads`). Llama only.
    #[serde(default)]
    pub kv_heads: Option<usize>,
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn opt() -> String {
    "opt".into()
}
fn d_vocab() -> usize {
    512
}
fn d_hidden() -> usize {
    64
}
fn d_layers() -> usize {
    2
}
fn d_heads() -> usize {
    4
}
fn d_ffn() -> usize {
    256
}
fn d_positions() -> usize {
    256
}
fn d_seed() -> u64 {
    0
}

impl InitSettings {
    fn from_value(v: &serde_json::Value) -> Result<Self, StepError> {
        let s: InitSettings =
            serde_json::from_value(v.clone()).map_err(crate::settings::SettingError::from_serde)?;
        let llama = match s.architecture.as_str() {
            "opt" => false,
            "llama" => true,
            other => {
                return Err(StepError::with(
                    "architecture",
                    format!("`{other}` is not supported (supported: opt, llama)"),
                ));
            }
        };
        if llama && (s.post_ln || s.word_embed_proj_dim.is_some()) {
            return Err(StepError::with(
                if s.post_ln {
                    "post_ln"
                } else {
                    "word_embed_proj_dim"
                },
                "is an OPT setting; Llama has neither",
            ));
        }
        if !llama && s.kv_heads.is_some() {
            return Err(StepError::with("kv_heads", "is a Llama setting"));
        }
        if let Some(kv) = s.kv_heads
            && (kv == 0 || !s.heads.is_multiple_of(kv))
        {
            return Err(StepError::with(
                "kv_heads",
                format!("must divide heads {}, found {kv}", s.heads),
            ));
        }
        if llama && !(s.hidden_size / s.heads).is_multiple_of(2) {
            return Err(StepError::with(
                "heads",
                "hidden_size / heads must be even for rotary embeddings",
            ));
        }
        for (k, n) in [
            ("hidden_size", s.hidden_size),
            ("layers", s.layers),
            ("heads", s.heads),
            ("ffn_dim", s.ffn_dim),
            ("max_positions", s.max_positions),
        ] {
            if n == 0 {
                return Err(StepError::with(k, "must be at least 1"));
            }
        }
        if !s.hidden_size.is_multiple_of(s.heads) {
            return Err(StepError::with(
                "heads",
                format!(
                    "hidden_size {} is not a multiple of heads {}",
                    s.hidden_size, s.heads
                ),
            ));
        }
        if !(bpe::OPT_SPECIALS.0.len() + 256..=1 << 20).contains(&s.vocab_size) {
            return Err(StepError::with(
                "vocab_size",
                format!(
                    "must be between {} (bytes + special tokens) and 1048576, found {}",
                    bpe::OPT_SPECIALS.0.len() + 256,
                    s.vocab_size
                ),
            ));
        }
        Ok(s)
    }
}

impl StepKind for ModelInit {
    fn name(&self) -> &'static str {
        "model.init"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "a random OPT or Llama model folder (HF layout) + a BPE tokenizer, for pipeline smoke tests"
    }

    fn check_with(&self, with: &serde_json::Value) -> Vec<WithProblem> {
        WithProblem::of(InitSettings::from_value(with))
    }

    fn default_outputs(&self, _with: &serde_json::Value) -> Vec<String> {
        vec!["model/".into()]
    }

    fn path_keys(&self) -> &'static [&'static str] {
        &["corpus"]
    }

    fn execute(&self, ctx: &StepContext) -> Result<Metrics, StepError> {
        let s = InitSettings::from_value(&ctx.with)?;
        let dir = ctx.work.join("model");
        std::fs::create_dir_all(&dir).map_err(|e| StepError::io(dir.display(), e))?;
        let texts = corpus(&ctx.resolve(Path::new(&s.corpus)))?;
        let llama = s.architecture == "llama";
        let specials = if llama {
            bpe::LLAMA_SPECIALS
        } else {
            bpe::OPT_SPECIALS
        };
        let vocab = bpe::train(&texts, s.vocab_size, specials, &dir.join("tokenizer.json"))?;
        let config = if llama {
            llama_weights::config_json(&s)
        } else {
            opt_weights::config_json(&s)
        };
        let text = serde_json::to_string_pretty(&config).expect("config serializes");
        std::fs::write(dir.join("config.json"), text)
            .map_err(|e| StepError::io("writing config.json", e))?;
        let params = if llama {
            llama_weights::write(&s, &dir.join("model.safetensors"))?
        } else {
            opt_weights::write(&s, &dir.join("model.safetensors"))?
        };
        let mut m = Metrics::new();
        m.insert("parameters".into(), params.into());
        m.insert("tokenizer_vocab".into(), vocab.into());
        m.insert("corpus_lines".into(), texts.len().into());
        Ok(m)
    }
}

/// The corpus's texts: a JSONL line gives its `text`, or its `prompt` and `completion`; any
/// other line is taken as text.
fn corpus(path: &Path) -> Result<Vec<String>, StepError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StepError::Input(format!("with.corpus {}: {e}", path.display())))?;
    let texts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if v.is_object() => ["text", "prompt", "completion"]
                .iter()
                .filter_map(|k| v.get(*k).and_then(|x| x.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            _ => l.to_string(),
        })
        .collect();
    if texts.is_empty() {
        return Err(StepError::Input(format!(
            "with.corpus {}: no text to train a tokenizer on",
            path.display()
        )));
    }
    Ok(texts)
}
