//! OPT's `config.json` and weights in the names transformers' `OPTForCausalLM` saves
//! (`model.decoder.…`, the LM head tied to the token embeddings and not saved): linear and
//! embedding weights drawn from N(0, 0.02²) by a seeded generator, biases zero, LayerNorms
//! identity.

use std::path::Path;

use super::InitSettings;
use super::safetensors::{Fill, TensorSet};
use crate::error::StepError;

/// OPT's `config.json` for these settings.
pub(crate) fn config_json(s: &InitSettings) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["OPTForCausalLM"],
        "model_type": "opt",
        "vocab_size": s.vocab_size,
        "hidden_size": s.hidden_size,
        "num_hidden_layers": s.layers,
        "ffn_dim": s.ffn_dim,
        "num_attention_heads": s.heads,
        "max_position_embeddings": s.max_positions,
        "word_embed_proj_dim": s.word_embed_proj_dim.unwrap_or(s.hidden_size),
        "do_layer_norm_before": !s.post_ln,
        "activation_function": "relu",
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "init_std": 0.02,
        "enable_bias": true,
        "layer_norm_elementwise_affine": true,
        "tie_word_embeddings": true,
        "bos_token_id": 2,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "torch_dtype": "float32"
    })
}

/// Writes the weights; the parameter count.
pub(crate) fn write(s: &InitSettings, path: &Path) -> Result<usize, StepError> {
    let h = s.hidden_size;
    let proj = s.word_embed_proj_dim.unwrap_or(h);
    let mut t = TensorSet::new(s.seed);
    let d = "model.decoder";
    t.add(
        format!("{d}.embed_tokens.weight"),
        vec![s.vocab_size, proj],
        Fill::Normal,
    );
    t.add(
        format!("{d}.embed_positions.weight"),
        vec![s.max_positions + 2, h],
        Fill::Normal,
    );
    if proj != h {
        t.add(
            format!("{d}.project_in.weight"),
            vec![h, proj],
            Fill::Normal,
        );
        t.add(
            format!("{d}.project_out.weight"),
            vec![proj, h],
            Fill::Normal,
        );
    }
    if !s.post_ln {
        t.add(
            format!("{d}.final_layer_norm.weight"),
            vec![h],
            Fill::Const(1.0),
        );
        t.add(
            format!("{d}.final_layer_norm.bias"),
            vec![h],
            Fill::Const(0.0),
        );
    }
    for i in 0..s.layers {
        let p = format!("{d}.layers.{i}");
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            t.add(
                format!("{p}.self_attn.{n}.weight"),
                vec![h, h],
                Fill::Normal,
            );
            t.add(format!("{p}.self_attn.{n}.bias"), vec![h], Fill::Const(0.0));
        }
        for n in ["self_attn_layer_norm", "final_layer_norm"] {
            t.add(format!("{p}.{n}.weight"), vec![h], Fill::Const(1.0));
            t.add(format!("{p}.{n}.bias"), vec![h], Fill::Const(0.0));
        }
        t.add(format!("{p}.fc1.weight"), vec![s.ffn_dim, h], Fill::Normal);
        t.add(format!("{p}.fc1.bias"), vec![s.ffn_dim], Fill::Const(0.0));
        t.add(format!("{p}.fc2.weight"), vec![h, s.ffn_dim], Fill::Normal);
        t.add(format!("{p}.fc2.bias"), vec![h], Fill::Const(0.0));
    }
    t.write(path)
}
