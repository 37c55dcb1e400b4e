//! Llama's and Mistral's `config.json` fields, checked: a value that would make transformers
//! compute something else than this implementation (rope scaling, another activation) is refused
//! with the key that causes it.

use serde_json::{Map, Value};

use crate::ml::config_json::ConfigJson;
use crate::ml::error::MlResult;

/// transformers' rotary base when a config names none.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;
/// Mistral's window when `sliding_window` is absent (not `null`) from config.json.
const MISTRAL_DEFAULT_WINDOW: i64 = 4096;

/// The hyper-parameters of a Llama-family model.
#[derive(Debug, Clone)]
pub(crate) struct LlamaConfig {
    /// `llama` or `mistral`.
    pub(crate) model_type: String,
    pub(crate) vocab_size: i64,
    pub(crate) hidden_size: i64,
    pub(crate) intermediate_size: i64,
    pub(crate) num_layers: i64,
    pub(crate) num_heads: i64,
    pub(crate) num_kv_heads: i64,
    pub(crate) head_dim: i64,
    pub(crate) max_positions: i64,
    pub(crate) rms_norm_eps: f64,
    pub(crate) rope_theta: f64,
    pub(crate) attention_bias: bool,
    pub(crate) mlp_bias: bool,
    pub(crate) attention_dropout: f64,
    pub(crate) tie_word_embeddings: bool,
    /// Keys further back than this many positions are hidden (Mistral).
    pub(crate) sliding_window: Option<i64>,
    pub(crate) bos_token_id: Option<i64>,
    pub(crate) eos_token_id: Option<i64>,
    pub(crate) pad_token_id: Option<i64>,
}

impl LlamaConfig {
    /// Reads a `llama` or `mistral` config.
    pub(crate) fn from_json(c: &ConfigJson, model_type: &str) -> MlResult<Self> {
        let mistral = model_type == "mistral";
        let hidden_size = c.usize("hidden_size")?;
        let num_heads = c.usize("num_attention_heads")?;
        let num_kv_heads = c.usize_opt("num_key_value_heads")?.unwrap_or(num_heads);
        if num_heads % num_kv_heads != 0 {
            return Err(c.key_error(
                "num_key_value_heads",
                format!("{num_kv_heads} does not divide `num_attention_heads` {num_heads}"),
            ));
        }
        let head_dim = match c.usize_opt("head_dim")? {
            Some(d) => d,
            None if hidden_size % num_heads == 0 => hidden_size / num_heads,
            None => {
                return Err(c.key_error(
                    "hidden_size",
                    format!(
                        "{hidden_size} is not a multiple of `num_attention_heads` {num_heads} (and no `head_dim` is given)"
                    ),
                ));
            }
        };
        if head_dim % 2 != 0 {
            return Err(c.key_error(
                "head_dim",
                format!("{head_dim} is odd; rotary embeddings need an even head width"),
            ));
        }
        match c.str_opt("hidden_act")?.unwrap_or("silu") {
            "silu" | "swish" => {}
            other => {
                return Err(c.key_error(
                    "hidden_act",
                    format!("`{other}` is not supported (the SwiGLU MLP here uses silu)"),
                ));
            }
        }
        let default_positions = if mistral { 4096 * 32 } else { 2048 };
        let sliding_window = if !mistral {
            // transformers' Llama ignores the key.
            None
        } else if c.has_key("sliding_window") {
            c.usize_opt("sliding_window")?
        } else {
            Some(MISTRAL_DEFAULT_WINDOW)
        };
        Ok(LlamaConfig {
            model_type: model_type.to_string(),
            vocab_size: c.usize("vocab_size")?,
            hidden_size,
            intermediate_size: c.usize("intermediate_size")?,
            num_layers: c.usize("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            max_positions: c
                .usize_opt("max_position_embeddings")?
                .unwrap_or(default_positions),
            rms_norm_eps: c.positive_f64_or("rms_norm_eps", 1e-6)?,
            rope_theta: rope_theta(c)?,
            // transformers' Mistral has no biases whatever the config says.
            attention_bias: !mistral && c.bool_or("attention_bias", false)?,
            mlp_bias: !mistral && c.bool_or("mlp_bias", false)?,
            attention_dropout: c.prob_or("attention_dropout", 0.0)?,
            tie_word_embeddings: c.bool_or("tie_word_embeddings", false)?,
            sliding_window,
            bos_token_id: c.token_id("bos_token_id")?,
            eos_token_id: c.token_id("eos_token_id")?,
            pad_token_id: c.token_id("pad_token_id")?,
        })
    }
}

/// The rotary base: `rope_parameters.rope_theta` (transformers 5), else `rope_theta`, else
/// 10000. Only plain rotary embeddings are supported: a `rope_scaling` / `rope_parameters` of
/// another type (linear, dynamic, llama3, yarn, ...) or a partial rotary factor is refused.
fn rope_theta(c: &ConfigJson) -> MlResult<f64> {
    let mut theta = c.positive_f64_or("rope_theta", DEFAULT_ROPE_THETA)?;
    let partial = c.positive_f64_or("partial_rotary_factor", 1.0)?;
    if partial != 1.0 {
        return Err(c.key_error(
            "partial_rotary_factor",
            format!("{partial} is not supported (only 1.0)"),
        ));
    }
    // transformers reads `rope_scaling` in place of `rope_parameters` when both are given.
    for key in ["rope_parameters", "rope_scaling"] {
        let Some(p) = c.object_opt(key)? else {
            continue;
        };
        let kind = rope_type(p);
        if kind != "default" {
            return Err(c.key_error(
                key,
                format!(
                    "has rope type `{kind}`; only plain rotary embeddings (`default`) are supported"
                ),
            ));
        }
        if let Some(f) = p.get("partial_rotary_factor").filter(|v| !v.is_null())
            && f.as_f64() != Some(1.0)
        {
            return Err(c.key_error(
                key,
                format!("has `partial_rotary_factor` {f}; only 1.0 is supported"),
            ));
        }
        if let Some(v) = p.get("rope_theta").filter(|v| !v.is_null()) {
            theta = v
                .as_f64()
                .filter(|x| *x > 0.0 && x.is_finite())
                .ok_or_else(|| {
                    c.key_error(key, format!("has `rope_theta` {v}, not a positive number"))
                })?;
        }
    }
    Ok(theta)
}

/// `rope_type` (or the older `type`) of a rope dictionary; `default` when unnamed.
fn rope_type(p: &Map<String, Value>) -> String {
    p.get("rope_type")
        .or_else(|| p.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default")
        .to_string()
}
