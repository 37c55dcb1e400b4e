//! The OPT causal LM (transformers' `OPTForCausalLM`): token and learned position embeddings
//! (positions offset by 2), optional `project_in`/`project_out` when the embedding width
//! differs from the hidden width, pre- or post-LN decoder layers, and an `lm_head` tied to the
//! token embedding unless the folder stores its own.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::attention::OptAttention;
use super::config::OptConfig;
use super::layer::OptLayer;
use crate::ml::causal_lm::{CausalLm, ModelInfo};
use crate::ml::config_json::ConfigJson;
use crate::ml::error::MlResult;
use crate::ml::layer_norm::LayerNorm;
use crate::ml::linear::Linear;
use crate::ml::mask::causal_mask;
use crate::ml::mode::Mode;
use crate::ml::weights::WeightMap;

/// OPT position ids start at this row of `embed_positions`.
const POSITION_OFFSET: i64 = 2;
const LN_EPS: f64 = 1e-5;

/// An OPT model.
pub struct OptModel {
    info: ModelInfo,
    embed_tokens: Tensor,
    embed_positions: Tensor,
    project_in: Option<Linear>,
    project_out: Option<Linear>,
    layers: Vec<OptLayer>,
    final_layer_norm: Option<LayerNorm>,
    lm_head: Option<Tensor>,
}

impl OptModel {
    /// Loads an OPT folder whose `config.json` has been read as `json`.
    pub(crate) fn load(
        dir: &Path,
        json: &ConfigJson,
        kind: Kind,
        device: Device,
    ) -> MlResult<Self> {
        let cfg = OptConfig::from_json(json)?;
        let mut w = WeightMap::load(dir, kind, device)?;
        let names = |n: &str| vec![format!("model.decoder.{n}"), format!("decoder.{n}")];
        let (h, e) = (cfg.hidden_size, cfg.word_embed_proj_dim);
        let embed_tokens = w.take(&names("embed_tokens.weight"), &[cfg.vocab_size, e])?;
        let embed_positions = w.take(
            &names("embed_positions.weight"),
            &[cfg.max_positions + POSITION_OFFSET, h],
        )?;
        let (project_in, project_out) = if e != h {
            let pin = w.take(&names("project_in.weight"), &[h, e])?;
            let pout = w.take(&names("project_out.weight"), &[e, h])?;
            (Some(Linear::new(pin, None)), Some(Linear::new(pout, None)))
        } else {
            (None, None)
        };
        let norm = |w: &mut WeightMap, prefix: String| -> MlResult<LayerNorm> {
            let (weight, bias) = if cfg.layer_norm_affine {
                (
                    Some(w.take(&names(&format!("{prefix}.weight")), &[h])?),
                    Some(w.take(&names(&format!("{prefix}.bias")), &[h])?),
                )
            } else {
                (None, None)
            };
            Ok(LayerNorm {
                weight,
                bias,
                width: h,
                eps: LN_EPS,
            })
        };
        let mut layers = Vec::with_capacity(cfg.num_layers as usize);
        for i in 0..cfg.num_layers {
            let p = format!("layers.{i}");
            let lin = |w: &mut WeightMap, n: &str, out: i64, inp: i64| -> MlResult<Linear> {
                let weight = w.take(&names(&format!("{p}.{n}.weight")), &[out, inp])?;
                let bias = if cfg.enable_bias {
                    Some(w.take(&names(&format!("{p}.{n}.bias")), &[out])?)
                } else {
                    None
                };
                Ok(Linear::new(weight, bias))
            };
            let self_attn = OptAttention {
                q_proj: lin(&mut w, "self_attn.q_proj", h, h)?,
                k_proj: lin(&mut w, "self_attn.k_proj", h, h)?,
                v_proj: lin(&mut w, "self_attn.v_proj", h, h)?,
                out_proj: lin(&mut w, "self_attn.out_proj", h, h)?,
                num_heads: cfg.num_heads,
                head_dim: cfg.head_dim(),
                dropout: cfg.attention_dropout,
            };
            let fc1 = lin(&mut w, "fc1", cfg.ffn_dim, h)?;
            let fc2 = lin(&mut w, "fc2", h, cfg.ffn_dim)?;
            layers.push(OptLayer {
                self_attn,
                self_attn_layer_norm: norm(&mut w, format!("{p}.self_attn_layer_norm"))?,
                fc1,
                fc2,
                final_layer_norm: norm(&mut w, format!("{p}.final_layer_norm"))?,
                pre_ln: cfg.do_layer_norm_before,
                activation: cfg.activation,
                dropout: cfg.dropout,
                stream: (1 << 32) + 2 * i as u64,
            });
        }
        let final_layer_norm = if cfg.final_layer_norm {
            Some(norm(&mut w, "final_layer_norm".to_string())?)
        } else {
            None
        };
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(w.take(&["lm_head.weight".to_string()], &[cfg.vocab_size, e])?)
        };
        let numel = |t: &Tensor| t.numel() as i64;
        let lin = |l: &Linear| l.in_features() * l.out_features() + l.bias().map_or(0, numel);
        let norm_params =
            |n: &LayerNorm| n.weight.as_ref().map_or(0, numel) + n.bias.as_ref().map_or(0, numel);
        let mut base_params =
            numel(&embed_tokens) + numel(&embed_positions) + lm_head.as_ref().map_or(0, numel);
        base_params += project_in.as_ref().map_or(0, lin) + project_out.as_ref().map_or(0, lin);
        base_params += final_layer_norm.as_ref().map_or(0, norm_params);
        for l in &layers {
            let a = &l.self_attn;
            base_params += lin(&a.q_proj) + lin(&a.k_proj) + lin(&a.v_proj) + lin(&a.out_proj);
            base_params += lin(&l.fc1) + lin(&l.fc2);
            base_params += norm_params(&l.self_attn_layer_norm) + norm_params(&l.final_layer_norm);
        }
        let info = ModelInfo {
            architecture: "opt".into(),
            vocab_size: cfg.vocab_size,
            max_positions: cfg.max_positions,
            bos_token_id: cfg.bos_token_id,
            eos_token_id: cfg.eos_token_id,
            pad_token_id: cfg.pad_token_id,
            kind,
            device,
            base_params,
        };
        Ok(OptModel {
            info,
            embed_tokens,
            embed_positions,
            project_in,
            project_out,
            layers,
            final_layer_norm,
            lm_head,
        })
    }
}

impl CausalLm for OptModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, mode: Mode) -> Tensor {
        let (b, t) = input_ids.size2().expect("input_ids is [batch, seq]");
        let device = input_ids.device();
        let ones;
        let mask = match attention_mask {
            Some(m) => m.to_kind(Kind::Int64),
            None => {
                ones = Tensor::ones([b, t], (Kind::Int64, device));
                ones.shallow_clone()
            }
        };
        let positions = mask.cumsum(1, Kind::Int64) * &mask - 1 + POSITION_OFFSET;
        let tokens = Tensor::embedding(&self.embed_tokens, input_ids, -1, false, false);
        let tokens = match &self.project_in {
            Some(p) => p.forward(&tokens, mode),
            None => tokens,
        };
        let mut h = tokens + Tensor::embedding(&self.embed_positions, &positions, -1, false, false);
        let attn_mask = causal_mask(attention_mask.map(|_| &mask), t, None, device);
        for layer in &self.layers {
            h = layer.forward(&h, attn_mask.as_ref(), mode);
        }
        if let Some(n) = &self.final_layer_norm {
            h = n.forward(&h);
        }
        if let Some(p) = &self.project_out {
            h = p.forward(&h, mode);
        }
        h.linear::<&Tensor>(self.lm_head.as_ref().unwrap_or(&self.embed_tokens), None)
    }

    fn linears(&self) -> Vec<(String, &Linear)> {
        let mut v = Vec::new();
        if let Some(p) = &self.project_in {
            v.push(("model.decoder.project_in".to_string(), p));
        }
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.decoder.layers.{i}");
            v.push((format!("{p}.self_attn.q_proj"), &l.self_attn.q_proj));
            v.push((format!("{p}.self_attn.k_proj"), &l.self_attn.k_proj));
            v.push((format!("{p}.self_attn.v_proj"), &l.self_attn.v_proj));
            v.push((format!("{p}.self_attn.out_proj"), &l.self_attn.out_proj));
            v.push((format!("{p}.fc1"), &l.fc1));
            v.push((format!("{p}.fc2"), &l.fc2));
        }
        if let Some(p) = &self.project_out {
            v.push(("model.decoder.project_out".to_string(), p));
        }
        v
    }

    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut v = Vec::new();
        if let Some(p) = &mut self.project_in {
            v.push(("model.decoder.project_in".to_string(), p));
        }
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = format!("model.decoder.layers.{i}");
            v.push((format!("{p}.self_attn.q_proj"), &mut l.self_attn.q_proj));
            v.push((format!("{p}.self_attn.k_proj"), &mut l.self_attn.k_proj));
            v.push((format!("{p}.self_attn.v_proj"), &mut l.self_attn.v_proj));
            v.push((format!("{p}.self_attn.out_proj"), &mut l.self_attn.out_proj));
            v.push((format!("{p}.fc1"), &mut l.fc1));
            v.push((format!("{p}.fc2"), &mut l.fc2));
        }
        if let Some(p) = &mut self.project_out {
            v.push(("model.decoder.project_out".to_string(), p));
        }
        v
    }

    fn default_lora_targets(&self) -> &'static [&'static str] {
        &["fc1", "fc2"]
    }

    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let kind = self.info.kind;
        let mut v = vec![
            (
                "model.decoder.embed_tokens.weight".to_string(),
                self.embed_tokens.shallow_clone(),
            ),
            (
                "model.decoder.embed_positions.weight".to_string(),
                self.embed_positions.shallow_clone(),
            ),
        ];
        for (name, lin) in self.linears() {
            v.push((format!("{name}.weight"), lin.merged_weight(kind)));
            if let Some(b) = lin.bias() {
                v.push((format!("{name}.bias"), b.shallow_clone()));
            }
        }
        let mut norm = |name: String, n: &LayerNorm| {
            if let (Some(w), Some(b)) = (&n.weight, &n.bias) {
                v.push((format!("{name}.weight"), w.shallow_clone()));
                v.push((format!("{name}.bias"), b.shallow_clone()));
            }
        };
        for (i, l) in self.layers.iter().enumerate() {
            norm(
                format!("model.decoder.layers.{i}.self_attn_layer_norm"),
                &l.self_attn_layer_norm,
            );
            norm(
                format!("model.decoder.layers.{i}.final_layer_norm"),
                &l.final_layer_norm,
            );
        }
        if let Some(n) = &self.final_layer_norm {
            norm("model.decoder.final_layer_norm".to_string(), n);
        }
        if let Some(w) = &self.lm_head {
            v.push(("lm_head.weight".to_string(), w.shallow_clone()));
        }
        v
    }
}
