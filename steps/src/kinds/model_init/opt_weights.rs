//! OPT's `config.json` and weights in the names transformers' `OPTForCausalLM` saves
//! (`model.decoder.…`, the LM head tied to the token embeddings and not saved): linear and
//! embedding weights drawn from N(0, 0.02²) by a seeded generator, biases zero, LayerNorms
//! identity.

use std::path::Path;

use super::InitSettings;
use super::safetensors::{Entry, Filler, write as write_tensors};
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

/// Normal(0, std²) values from a seeded stream (splitmix64 + Box–Muller).
fn normal(seed: u64, std: f32) -> impl Fn(&mut Vec<f32>) {
    move |out: &mut Vec<f32>| {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let len = out.len();
        out.clear();
        for _ in 0..len.div_ceil(2) {
            let (u1, u2) = (next().max(f64::MIN_POSITIVE), next());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32 * std);
            out.push((r * t.sin()) as f32 * std);
        }
        out.truncate(len);
    }
}

/// Writes the weights; the parameter count.
pub(crate) fn write(s: &InitSettings, path: &Path) -> Result<usize, StepError> {
    let h = s.hidden_size;
    let proj = s.word_embed_proj_dim.unwrap_or(h);
    let mut entries = Vec::new();
    let mut stream = s.seed.wrapping_mul(0x1000_0000_01b3);
    let mut add = |name: String, shape: Vec<usize>, kind: Fill| {
        stream = stream.wrapping_add(1);
        let len: usize = shape.iter().product();
        let fill: Filler = match kind {
            Fill::Normal => {
                let f = normal(stream, 0.02);
                Box::new(move |v: &mut Vec<f32>| {
                    v.resize(len, 0.0);
                    f(v)
                })
            }
            Fill::Const(c) => Box::new(move |v: &mut Vec<f32>| v.resize(len, c)),
        };
        entries.push(Entry { name, shape, fill });
    };
    let d = "model.decoder";
    add(
        format!("{d}.embed_tokens.weight"),
        vec![s.vocab_size, proj],
        Fill::Normal,
    );
    add(
        format!("{d}.embed_positions.weight"),
        vec![s.max_positions + 2, h],
        Fill::Normal,
    );
    if proj != h {
        add(
            format!("{d}.project_in.weight"),
            vec![h, proj],
            Fill::Normal,
        );
        add(
            format!("{d}.project_out.weight"),
            vec![proj, h],
            Fill::Normal,
        );
    }
    if !s.post_ln {
        add(
            format!("{d}.final_layer_norm.weight"),
            vec![h],
            Fill::Const(1.0),
        );
        add(
            format!("{d}.final_layer_norm.bias"),
            vec![h],
            Fill::Const(0.0),
        );
    }
    for i in 0..s.layers {
        let p = format!("{d}.layers.{i}");
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            add(
                format!("{p}.self_attn.{n}.weight"),
                vec![h, h],
                Fill::Normal,
            );
            add(format!("{p}.self_attn.{n}.bias"), vec![h], Fill::Const(0.0));
        }
        for n in ["self_attn_layer_norm", "final_layer_norm"] {
            add(format!("{p}.{n}.weight"), vec![h], Fill::Const(1.0));
            add(format!("{p}.{n}.bias"), vec![h], Fill::Const(0.0));
        }
        add(format!("{p}.fc1.weight"), vec![s.ffn_dim, h], Fill::Normal);
        add(format!("{p}.fc1.bias"), vec![s.ffn_dim], Fill::Const(0.0));
        add(format!("{p}.fc2.weight"), vec![h, s.ffn_dim], Fill::Normal);
        add(format!("{p}.fc2.bias"), vec![h], Fill::Const(0.0));
    }
    write_tensors(path, &entries)
}

enum Fill {
    Normal,
    Const(f32),
}
