//! Adapters in PEFT's on-disk layout: `adapter_model.safetensors` with keys
//! `base_model.model.<module>.lora_A.weight` / `lora_B.weight`, and `adapter_config.json`, so
//! that `PeftModel.from_pretrained` loads what tuna trains, and tuna loads what PEFT saves.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;
use tch::{Kind, Tensor};

use super::adapt::{PEFT_PREFIX, lora_parameters};
use super::causal_lm::CausalLm;
use super::error::{MlError, MlResult};
use super::lora::{LoraAdapter, LoraConfig};

/// Writes the model's adapters to `dir` (created if needed).
pub fn save_adapter(
    model: &dyn CausalLm,
    cfg: &LoraConfig,
    targets: &[String],
    base_model: &str,
    dir: &Path,
) -> MlResult<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| MlError::io(format!("creating {}", dir.display()), e))?;
    let tensors: Vec<(String, Tensor)> = lora_parameters(model)
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&tensors, dir.join("adapter_model.safetensors"))?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_rslora": false,
        "use_dora": false,
    });
    let text = serde_json::to_string_pretty(&config).expect("json");
    std::fs::write(dir.join("adapter_config.json"), text).map_err(|e| {
        MlError::io(
            format!("writing {}", dir.join("adapter_config.json").display()),
            e,
        )
    })
}

/// Installs the LoRA adapter saved in `dir` (PEFT layout) on `model`; returns the number of
/// adapted layers.
pub fn load_adapter(model: &mut dyn CausalLm, dir: &Path) -> MlResult<usize> {
    let err = |message: String| MlError::Adapter {
        path: dir.to_path_buf(),
        message,
    };
    let cfg_text = std::fs::read_to_string(dir.join("adapter_config.json"))
        .map_err(|e| err(format!("cannot read adapter_config.json: {e}")))?;
    let cfg: serde_json::Value = serde_json::from_str(&cfg_text)
        .map_err(|e| err(format!("adapter_config.json is not JSON: {e}")))?;
    if let Some(t) = cfg.get("peft_type").and_then(|v| v.as_str())
        && t != "LORA"
    {
        return Err(err(format!("peft_type {t} is not supported (only LORA)")));
    }
    let r = cfg
        .get("r")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| err("adapter_config.json lacks `r`".into()))?;
    let alpha = cfg.get("lora_alpha").and_then(|v| v.as_f64()).unwrap_or(r);
    if cfg.get("use_rslora").and_then(|v| v.as_bool()) == Some(true)
        || cfg.get("use_dora").and_then(|v| v.as_bool()) == Some(true)
    {
        return Err(err("rsLoRA and DoRA adapters are not supported".into()));
    }
    let file = dir.join("adapter_model.safetensors");
    let mut tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&file)
        .map_err(|e| err(format!("cannot read adapter_model.safetensors: {e}")))?
        .into_iter()
        .map(|(k, v)| (k.replace(".default.weight", ".weight"), v))
        .collect();
    let device = model.info().device;
    let mut count = 0;
    for (i, (name, lin)) in model.linears_mut().into_iter().enumerate() {
        let key = |m: &str| format!("{PEFT_PREFIX}{name}.{m}.weight");
        let (Some(a), Some(b)) = (
            tensors.remove(&key("lora_A")),
            tensors.remove(&key("lora_B")),
        ) else {
            continue;
        };
        let r = a.size()[0];
        if a.size() != [r, lin.in_features()] || b.size() != [lin.out_features(), r] {
            return Err(err(format!(
                "{name}: lora_A {:?} / lora_B {:?} do not fit a {}→{} layer",
                a.size(),
                b.size(),
                lin.in_features(),
                lin.out_features()
            )));
        }
        let a = a.to_kind(Kind::Float).to_device(device);
        let b = b.to_kind(Kind::Float).to_device(device);
        lin.set_lora(LoraAdapter::from_weights(
            a,
            b,
            alpha / r as f64,
            0.0,
            i as u64,
        ));
        count += 1;
    }
    if !tensors.is_empty() {
        let mut left: Vec<_> = tensors.keys().cloned().collect();
        left.sort();
        return Err(err(format!(
            "weights match no layer of this model: {}",
            left.join(", ")
        )));
    }
    if count == 0 {
        return Err(err("adapter_model.safetensors holds no LoRA weights".into()));
    }
    Ok(count)
}

/// Writes the model with adapters merged as a Hugging Face folder: `model.safetensors`,
/// `config.json` (copied, dtype updated) and the tokenizer files of `base_dir`.
pub fn save_merged(model: &dyn CausalLm, base_dir: &Path, dir: &Path) -> MlResult<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| MlError::io(format!("creating {}", dir.display()), e))?;
    let tensors: Vec<(String, Tensor)> = model
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors"))?;
    let cfg_path = base_dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| MlError::io(format!("reading {}", cfg_path.display()), e))?;
    let mut cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| MlError::Config {
        path: cfg_path.clone(),
        message: e.to_string(),
    })?;
    if let Some(m) = cfg.as_object_mut() {
        let dtype = if model.info().kind == Kind::BFloat16 {
            "bfloat16"
        } else {
            "float32"
        };
        m.insert("torch_dtype".into(), dtype.into());
        m.insert("dtype".into(), dtype.into());
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&cfg).expect("json"),
    )
    .map_err(|e| MlError::io(format!("writing {}", dir.join("config.json").display()), e))?;
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "vocab.json",
        "merges.txt",
    ] {
        let src = base_dir.join(f);
        if src.is_file() {
            std::fs::copy(&src, dir.join(f))
                .map_err(|e| MlError::io(format!("copying {}", src.display()), e))?;
        }
    }
    Ok(())
}
