//! Operations on any [`CausalLm`] by module name: attaching LoRA adapters to the targeted
//! linear layers, storing frozen base weights as NF4, and listing the trainable tensors under
//! the names PEFT writes (`base_model.model.<module>.lora_A.weight`).

use tch::Tensor;

use super::causal_lm::CausalLm;
use super::error::{MlError, MlResult};
use super::lora::LoraConfig;

/// The prefix PEFT puts before a module path in `adapter_model.safetensors`.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// The target names in effect: the user's, or the architecture's default.
pub fn lora_targets(model: &dyn CausalLm, cfg: &LoraConfig) -> Vec<String> {
    match &cfg.targets {
        Some(t) => t.clone(),
        None => model
            .default_lora_targets()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// Whether module path `name` is selected by `targets` (a target matches the last path
/// component, or a dotted suffix such as `self_attn.q_proj`, or the whole path).
pub fn is_target(name: &str, targets: &[String]) -> bool {
    targets
        .iter()
        .any(|t| name == t || name.ends_with(&format!(".{t}")))
}

/// Attaches a fresh adapter, initialised from `seed`, to every targeted linear layer;
/// returns how many.
pub fn apply_lora(model: &mut dyn CausalLm, cfg: &LoraConfig, seed: u64) -> MlResult<usize> {
    if let Some((key, message)) = cfg.problem() {
        return Err(MlError::Setting {
            key: key.into(),
            message,
        });
    }
    let targets = lora_targets(model, cfg);
    let mut count = 0;
    let mut available = std::collections::BTreeSet::new();
    for (i, (name, lin)) in model.linears_mut().into_iter().enumerate() {
        available.insert(name.rsplit('.').next().unwrap_or(&name).to_string());
        if is_target(&name, &targets) {
            lin.attach_lora(cfg, seed, i as u64);
            count += 1;
        }
    }
    if count == 0 {
        return Err(MlError::Setting {
            key: "lora.targets".into(),
            message: format!(
                "{} match no linear layer of this {} model (its layers: {})",
                targets.join(", "),
                model.info().architecture,
                available.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(count)
}

/// Stores every linear base weight as NF4; returns (bytes before as `bf16`, bytes after).
pub fn quantize_nf4(model: &mut dyn CausalLm, double_quant: bool) -> (u64, u64) {
    let mut before = 0;
    let mut after = 0;
    for (_, lin) in model.linears_mut() {
        before += (lin.in_features() * lin.out_features()) as u64 * 2;
        lin.quantize_nf4(double_quant);
        after += lin.base_bytes();
    }
    (before, after)
}

/// The adapters' tensors as PEFT names them, A before B, layers in model order.
pub fn lora_parameters(model: &dyn CausalLm) -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    for (name, lin) in model.linears() {
        if let Some(l) = lin.lora() {
            v.push((
                format!("{PEFT_PREFIX}{name}.lora_A.weight"),
                l.a.shallow_clone(),
            ));
            v.push((
                format!("{PEFT_PREFIX}{name}.lora_B.weight"),
                l.b.shallow_clone(),
            ));
        }
    }
    v
}

/// (trainable parameters, all parameters) — the base counted as stored elements.
pub fn parameter_counts(model: &dyn CausalLm) -> (i64, i64) {
    let trainable: i64 = model
        .linears()
        .iter()
        .filter_map(|(_, l)| l.lora().map(|a| a.numel()))
        .sum();
    (trainable, model.info().base_params + trainable)
}
