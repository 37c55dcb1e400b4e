//! LoRA and QLoRA: adapters on the named modules only, base frozen, loss falls on a tiny data
//! set, also through NF4 base weights.

use tch::Kind;
use tuna_steps::ml::finetune::{FinetuneConfig, Quantize, finetune};
use tuna_steps::ml::{
    DType, LoraConfig, Mode, apply_lora, load_causal_lm, lora_parameters, parameter_counts,
    quantize_nf4,
};

use crate::common::{device, device_spec, fixtures, max_abs_diff, read_tensors};
use crate::data::memorise_jsonl;

#[test]
fn adapters_go_on_the_targets_and_start_as_identity() {
    let dir = fixtures().join("pre_ln");
    let mut model = load_causal_lm(&dir, DType::F32, device()).unwrap();
    let r = read_tensors(&dir.join("reference.safetensors"));
    let n = apply_lora(model.as_mut(), &LoraConfig::default(), 0).unwrap();
    assert_eq!(n, 4, "fc1 and fc2 of 2 layers");
    let names: Vec<String> = lora_parameters(model.as_ref())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names[0],
        "base_model.model.model.decoder.layers.0.fc1.lora_A.weight"
    );
    assert_eq!(
        names[3],
        "base_model.model.model.decoder.layers.0.fc2.lora_B.weight"
    );
    let (trainable, total) = parameter_counts(model.as_ref());
    // r·(in + out) per adapted layer: fc1 32→64, fc2 64→32.
    assert_eq!(trainable, 2 * (8 * (32 + 64) + 8 * (64 + 32)));
    assert!(total > 10 * trainable);
    let stored: i64 = model
        .state_dict()
        .iter()
        .map(|(_, t)| t.numel() as i64)
        .sum();
    assert_eq!(total, stored + trainable);
    // B = 0: the adapted model computes the base model's logits.
    let logits = tch::no_grad(|| {
        model.forward(
            &r["input_ids"].narrow(0, 0, 1).to_device(device()),
            None,
            Mode::Eval,
        )
    });
    assert!(max_abs_diff(&logits, &r["logits_nomask"]) <= 1e-4);
    // Only the adapters require gradients.
    for (name, lin) in model.linears() {
        let l = lin.lora();
        assert_eq!(
            l.is_some(),
            name.ends_with("fc1") || name.ends_with("fc2"),
            "{name}"
        );
    }
}

#[test]
fn unknown_targets_are_refused_with_the_layer_names() {
    let mut model = load_causal_lm(&fixtures().join("pre_ln"), DType::F32, device()).unwrap();
    let cfg = LoraConfig {
        targets: Some(vec!["gate_proj".into()]),
        ..LoraConfig::default()
    };
    let e = apply_lora(model.as_mut(), &cfg, 0).unwrap_err().to_string();
    assert!(
        e.contains("gate_proj") && e.contains("fc1") && e.contains("q_proj"),
        "{e}"
    );
}

fn quick_config() -> FinetuneConfig {
    FinetuneConfig {
        lora: LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: Some(vec![
                "fc1".into(),
                "fc2".into(),
                "q_proj".into(),
                "v_proj".into(),
            ]),
        },
        learning_rate: 3e-2,
        batch_size: 8,
        max_steps: Some(40),
        device: device_spec(),
        threads: Some(1),
        ..FinetuneConfig::default()
    }
}

#[test]
fn lora_loss_falls_on_a_memorisable_set() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let m = finetune(
        &quick_config(),
        &fixtures().join("pre_ln"),
        &data,
        &tmp.path().join("out"),
    )
    .unwrap();
    assert_eq!(m.steps, 40);
    assert!(
        m.loss_last < 0.3 * m.loss_first,
        "loss {} → {}",
        m.loss_first,
        m.loss_last
    );
}

#[test]
fn qlora_trains_through_nf4_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let cfg = FinetuneConfig {
        quantize: Quantize::Nf4,
        double_quant: true,
        ..quick_config()
    };
    let m = finetune(
        &cfg,
        &fixtures().join("post_ln_proj"),
        &data,
        &tmp.path().join("out"),
    )
    .unwrap();
    assert!(
        m.loss_last < 0.3 * m.loss_first,
        "loss {} → {}",
        m.loss_first,
        m.loss_last
    );

    // The base really is NF4: about a quarter of bf16's bytes.
    let mut model =
        load_causal_lm(&fixtures().join("post_ln_proj"), DType::Bf16, device()).unwrap();
    let (bf16, nf4) = quantize_nf4(model.as_mut(), true);
    assert!((nf4 as f64) < 0.3 * bf16 as f64);
    assert_eq!(m.base_linear_bytes, nf4);
    assert!(model.linears().iter().all(|(_, l)| l.is_quantized()));
}

#[test]
fn bf16_training_runs_and_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let cfg = FinetuneConfig {
        dtype: DType::Bf16,
        ..quick_config()
    };
    let m = finetune(
        &cfg,
        &fixtures().join("pre_ln"),
        &data,
        &tmp.path().join("out"),
    )
    .unwrap();
    assert!(
        m.loss_last < 0.5 * m.loss_first,
        "loss {} → {}",
        m.loss_first,
        m.loss_last
    );
    let _ = Kind::BFloat16;
}
