//! Llama's `config.json` and weights in the names transformers' `LlamaForCausalLM` saves
//! (`model.layers.N.self_attn.q_proj.weight`, `model.layers.N.mlp.gate_proj.weight`, …, no
//! biases, the LM head tied to the token embeddings and not saved): linear and embedding
//! weights drawn from N(0, 0.02²) by a seeded generator, RMSNorm weights one.

use std::path::Path;

use super::InitSettings;
use super::safetensors::{Fill, TensorSet};
use crate::error::StepError;

/// Llama's `config.json` for these settings.
pub(crate) fn config_json(s: &InitSettings) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": s.vocab_size,
        "hidden_size": s.hidden_size,
        "intermediate_size": s.ffn_dim,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads.unwrap_or(s.heads),
        "max_position_embeddings": s.max_positions,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "attention_bias": false,
        "mlp_bias": false,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": true,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 3,
        "torch_dtype": "float32"
    })
}

/// Writes the weights; the parameter count.
pub(crate) fn write(s: &InitSettings, path: &Path) -> Result<usize, StepError> {
    let h = s.hidden_size;
    let head = h / s.heads;
    let kv = s.kv_heads.unwrap_or(s.heads) * head;
    let mut t = TensorSet::new(s.seed);
    t.add(
        "model.embed_tokens.weight".into(),
        vec![s.vocab_size, h],
        Fill::Normal,
    );
    for i in 0..s.layers {
        let p = format!("model.layers.{i}");
        t.add(
            format!("{p}.self_attn.q_proj.weight"),
            vec![h, h],
            Fill::Normal,
        );
        t.add(
            format!("{p}.self_attn.k_proj.weight"),
            vec![kv, h],
            Fill::Normal,
        );
        t.add(
            format!("{p}.self_attn.v_proj.weight"),
            vec![kv, h],
            Fill::Normal,
        );
        t.add(
            format!("{p}.self_attn.o_proj.weight"),
            vec![h, h],
            Fill::Normal,
        );
        t.add(
            format!("{p}.mlp.gate_proj.weight"),
            vec![s.ffn_dim, h],
            Fill::Normal,
        );
        t.add(
            format!("{p}.mlp.up_proj.weight"),
            vec![s.ffn_dim, h],
            Fill::Normal,
        );
        t.add(
            format!("{p}.mlp.down_proj.weight"),
            vec![h, s.ffn_dim],
            Fill::Normal,
        );
        t.add(
            format!("{p}.input_layernorm.weight"),
            vec![h],
            Fill::Const(1.0),
        );
        t.add(
            format!("{p}.post_attention_layernorm.weight"),
            vec![h],
            Fill::Const(1.0),
        );
    }
    t.add("model.norm.weight".into(), vec![h], Fill::Const(1.0));
    t.write(path)
}
