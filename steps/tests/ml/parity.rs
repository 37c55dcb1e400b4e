//! tuna's OPT against transformers' logits (fp32 to 1e-4; bf16 loosely).

use tch::{Kind, Tensor};
use tuna_steps::ml::{DType, Mode, load_causal_lm};

use crate::common::{device, fixtures, max_abs_diff, read_tensors};

/// Compares logits at the positions the mask keeps; returns the largest difference.
pub(crate) fn compare(name: &str, dtype: DType) -> f64 {
    let dir = fixtures().join(name);
    let model = load_causal_lm(&dir, dtype, device()).unwrap();
    let r = read_tensors(&dir.join("reference.safetensors"));
    let ids = &r["input_ids"].to_device(device());
    let mask = &r["attention_mask"].to_device(device());
    let logits = tch::no_grad(|| model.forward(ids, Some(mask), Mode::Eval)).to_kind(Kind::Float);
    assert_eq!(logits.size(), r["logits"].size());
    let logits = logits.to_device(tch::Device::Cpu);
    let keep = mask
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Bool)
        .unsqueeze(-1)
        .expand_as(&logits);
    let diff = max_abs_diff(
        &logits.masked_select(&keep),
        &r["logits"].masked_select(&keep),
    );
    let plain =
        tch::no_grad(|| model.forward(&ids.narrow(0, 0, 1), None, Mode::Eval)).to_kind(Kind::Float);
    diff.max(max_abs_diff(&plain, &r["logits_nomask"]))
}

#[test]
fn pre_ln_matches_transformers_fp32() {
    let d = compare("pre_ln", DType::F32);
    assert!(d <= 1e-4, "max |Δlogit| = {d}");
}

#[test]
fn post_ln_with_projection_matches_transformers_fp32() {
    let d = compare("post_ln_proj", DType::F32);
    assert!(d <= 1e-4, "max |Δlogit| = {d}");
}

#[test]
fn sharded_folder_matches_transformers_fp32() {
    let d = compare("sharded", DType::F32);
    assert!(d <= 1e-4, "max |Δlogit| = {d}");
}

/// bf16 logits of fixture `name` within 5 % of the largest fp32 reference logit.
pub(crate) fn assert_bf16_close(name: &str) {
    let r = read_tensors(&fixtures().join(name).join("reference.safetensors"));
    let scale = r["logits"].abs().max().double_value(&[]);
    let d = compare(name, DType::Bf16);
    assert!(
        d <= 0.05 * scale,
        "max |Δlogit| = {d} for logits up to {scale}"
    );
}

/// Row 1 of a reference is right-padded: its real prefix alone gives the same logits.
pub(crate) fn assert_right_padding_invariant(name: &str) {
    let dir = fixtures().join(name);
    let model = load_causal_lm(&dir, DType::F32, device()).unwrap();
    let r = read_tensors(&dir.join("reference.safetensors"));
    let prefix: Tensor = r["input_ids"]
        .narrow(0, 1, 1)
        .narrow(1, 0, 8)
        .to_device(device());
    let alone = tch::no_grad(|| model.forward(&prefix, None, Mode::Eval));
    let batched = r["logits"].narrow(0, 1, 1).narrow(1, 0, 8);
    assert!(max_abs_diff(&alone, &batched) <= 1e-4);
}

#[test]
fn bf16_stays_close_to_fp32_reference() {
    assert_bf16_close("pre_ln");
}

#[test]
fn padding_does_not_change_real_tokens() {
    assert_right_padding_invariant("pre_ln");
}
