//! The Llama-family causal LM (transformers' `LlamaForCausalLM` / `MistralForCausalLM`): token
//! embedding, decoder layers with rotary attention and SwiGLU MLPs, a final RMSNorm, and an
//! `lm_head` that is its own weight unless `tie_word_embeddings` shares the embedding.
//! Positions are `0..seq` for every row, as transformers' forward computes them without explicit
//! position ids: pad on the right (as fine-tuning does) for padded rows to match unpadded ones.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::attention::LlamaAttention;
use super::config::LlamaConfig;
use super::layer::LlamaLayer;
use super::rms_norm::RmsNorm;
use super::rotary::Rotary;
use crate::ml::causal_lm::{CausalLm, ModelInfo};
use crate::ml::config_json::ConfigJson;
use crate::ml::error::MlResult;
use crate::ml::linear::Linear;
use crate::ml::mask::causal_mask;
use crate::ml::mode::Mode;
use crate::ml::weights::WeightMap;

/// A Llama or Mistral model.
pub struct LlamaModel {
    info: ModelInfo,
    embed_tokens: Tensor,
    layers: Vec<LlamaLayer>,
    norm: RmsNorm,
    lm_head: Option<Tensor>,
    rotary: Rotary,
    sliding_window: Option<i64>,
}

impl LlamaModel {
    /// Loads a `llama` or `mistral` folder whose `config.json` has been read as `json`.
    pub(crate) fn load(
        dir: &Path,
        json: &ConfigJson,
        model_type: &str,
        kind: Kind,
        device: Device,
    ) -> MlResult<Self> {
        let cfg = LlamaConfig::from_json(json, model_type)?;
        let mut w = WeightMap::load(dir, kind, device)?;
        let names = |n: &str| vec![format!("model.{n}"), n.to_string()];
        let h = cfg.hidden_size;
        let (q_out, kv_out) = (
            cfg.num_heads * cfg.head_dim,
            cfg.num_kv_heads * cfg.head_dim,
        );
        let embed_tokens = w.take(&names("embed_tokens.weight"), &[cfg.vocab_size, h])?;
        let norm = |w: &mut WeightMap, prefix: &str| -> MlResult<RmsNorm> {
            Ok(RmsNorm {
                weight: w.take(&names(&format!("{prefix}.weight")), &[h])?,
                eps: cfg.rms_norm_eps,
            })
        };
        let mut layers = Vec::with_capacity(cfg.num_layers as usize);
        for i in 0..cfg.num_layers {
            let p = format!("layers.{i}");
            let lin = |w: &mut WeightMap, n: &str, bias: bool, out: i64, inp: i64| {
                let weight = w.take(&names(&format!("{p}.{n}.weight")), &[out, inp])?;
                let bias = if bias {
                    Some(w.take(&names(&format!("{p}.{n}.bias")), &[out])?)
                } else {
                    None
                };
                MlResult::Ok(Linear::new(weight, bias))
            };
            let ab = cfg.attention_bias;
            let mb = cfg.mlp_bias;
            let f = cfg.intermediate_size;
            layers.push(LlamaLayer {
                input_layernorm: norm(&mut w, &format!("{p}.input_layernorm"))?,
                self_attn: LlamaAttention {
                    q_proj: lin(&mut w, "self_attn.q_proj", ab, q_out, h)?,
                    k_proj: lin(&mut w, "self_attn.k_proj", ab, kv_out, h)?,
                    v_proj: lin(&mut w, "self_attn.v_proj", ab, kv_out, h)?,
                    o_proj: lin(&mut w, "self_attn.o_proj", ab, h, q_out)?,
                    num_heads: cfg.num_heads,
                    num_kv_heads: cfg.num_kv_heads,
                    head_dim: cfg.head_dim,
                    dropout: cfg.attention_dropout,
                },
                post_attention_layernorm: norm(&mut w, &format!("{p}.post_attention_layernorm"))?,
                gate_proj: lin(&mut w, "mlp.gate_proj", mb, f, h)?,
                up_proj: lin(&mut w, "mlp.up_proj", mb, f, h)?,
                down_proj: lin(&mut w, "mlp.down_proj", mb, h, f)?,
            });
        }
        let norm = norm(&mut w, "norm")?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(w.take(&["lm_head.weight".to_string()], &[cfg.vocab_size, h])?)
        };
        let mut model = LlamaModel {
            info: ModelInfo {
                architecture: cfg.model_type.clone(),
                vocab_size: cfg.vocab_size,
                max_positions: cfg.max_positions,
                bos_token_id: cfg.bos_token_id,
                eos_token_id: cfg.eos_token_id,
                pad_token_id: cfg.pad_token_id,
                kind,
                device,
                base_params: 0,
            },
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary: Rotary::new(cfg.head_dim, cfg.rope_theta, device),
            sliding_window: cfg.sliding_window,
        };
        let numel = |t: &Tensor| t.numel() as i64;
        let mut base_params = numel(&model.embed_tokens)
            + model.lm_head.as_ref().map_or(0, numel)
            + numel(&model.norm.weight);
        for (i, l) in model.layers.iter().enumerate() {
            base_params +=
                numel(&l.input_layernorm.weight) + numel(&l.post_attention_layernorm.weight);
            for (_, lin) in Self::layer_linears(l, i) {
                base_params += lin.in_features() * lin.out_features() + lin.bias().map_or(0, numel);
            }
        }
        model.info.base_params = base_params;
        Ok(model)
    }

    /// Each layer's linear layers under their Hugging Face paths, in module order.
    fn layer_linears(l: &LlamaLayer, i: usize) -> [(String, &Linear); 7] {
        let p = format!("model.layers.{i}");
        [
            (format!("{p}.self_attn.q_proj"), &l.self_attn.q_proj),
            (format!("{p}.self_attn.k_proj"), &l.self_attn.k_proj),
            (format!("{p}.self_attn.v_proj"), &l.self_attn.v_proj),
            (format!("{p}.self_attn.o_proj"), &l.self_attn.o_proj),
            (format!("{p}.mlp.gate_proj"), &l.gate_proj),
            (format!("{p}.mlp.up_proj"), &l.up_proj),
            (format!("{p}.mlp.down_proj"), &l.down_proj),
        ]
    }
}

impl CausalLm for LlamaModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, mode: Mode) -> Tensor {
        let (_, t) = input_ids.size2().expect("input_ids is [batch, seq]");
        let mut h = Tensor::embedding(&self.embed_tokens, input_ids, -1, false, false);
        let rope = self.rotary.tables(t, h.kind());
        let mask = causal_mask(attention_mask, t, self.sliding_window, input_ids.device());
        for layer in &self.layers {
            h = layer.forward(&h, &rope, mask.as_ref(), mode);
        }
        let h = self.norm.forward(&h);
        h.linear::<&Tensor>(self.lm_head.as_ref().unwrap_or(&self.embed_tokens), None)
    }

    fn linears(&self) -> Vec<(String, &Linear)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| Self::layer_linears(l, i))
            .collect()
    }

    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut v = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            v.push((format!("{p}.self_attn.q_proj"), &mut l.self_attn.q_proj));
            v.push((format!("{p}.self_attn.k_proj"), &mut l.self_attn.k_proj));
            v.push((format!("{p}.self_attn.v_proj"), &mut l.self_attn.v_proj));
            v.push((format!("{p}.self_attn.o_proj"), &mut l.self_attn.o_proj));
            v.push((format!("{p}.mlp.gate_proj"), &mut l.gate_proj));
            v.push((format!("{p}.mlp.up_proj"), &mut l.up_proj));
            v.push((format!("{p}.mlp.down_proj"), &mut l.down_proj));
        }
        v
    }

    fn default_lora_targets(&self) -> &'static [&'static str] {
        &["gate_proj", "up_proj", "down_proj"]
    }

    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let kind = self.info.kind;
        let mut v = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.shallow_clone(),
        )];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            for (name, lin) in Self::layer_linears(l, i) {
                v.push((format!("{name}.weight"), lin.merged_weight(kind)));
                if let Some(b) = lin.bias() {
                    v.push((format!("{name}.bias"), b.shallow_clone()));
                }
            }
            v.push((
                format!("{p}.input_layernorm.weight"),
                l.input_layernorm.weight.shallow_clone(),
            ));
            v.push((
                format!("{p}.post_attention_layernorm.weight"),
                l.post_attention_layernorm.weight.shallow_clone(),
            ));
        }
        v.push((
            "model.norm.weight".to_string(),
            self.norm.weight.shallow_clone(),
        ));
        if let Some(w) = &self.lm_head {
            v.push(("lm_head.weight".to_string(), w.shallow_clone()));
        }
        v
    }
}
