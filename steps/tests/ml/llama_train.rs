//! LoRA and QLoRA on the Llama family: the MLP projections adapted by default, loss falls on a
//! memorisable set (also through NF4), adapters load in PEFT with the same logits, merged
//! folders reload, and the model server answers.

use tch::{Kind, Tensor};
use tuna_steps::ml::finetune::{FinetuneConfig, Quantize, finetune};
use tuna_steps::ml::{
    DType, LoraConfig, Mode, TextTokenizer, apply_lora, load_adapter, load_causal_lm,
    lora_parameters, parameter_counts,
};

use crate::common::{device, device_spec, fixtures, max_abs_diff, read_tensors, run_py};
use crate::data::memorise_jsonl;
use crate::serve::{helm_request, start_on};

#[test]
fn default_adapters_go_on_the_mlp_projections_only() {
    let dir = fixtures().join("llama_tied");
    let mut model = load_causal_lm(&dir, DType::F32, device()).unwrap();
    let n = apply_lora(model.as_mut(), &LoraConfig::default(), 0).unwrap();
    assert_eq!(n, 6, "gate_proj, up_proj and down_proj of 2 layers");
    for (name, lin) in model.linears() {
        let mlp = name.contains(".mlp.");
        assert_eq!(lin.lora().is_some(), mlp, "{name}");
    }
    let names: Vec<String> = lora_parameters(model.as_ref())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names[0],
        "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight"
    );
    // r·(in + out): gate and up 32→64, down 64→32, two layers.
    let (trainable, total) = parameter_counts(model.as_ref());
    assert_eq!(trainable, 2 * 3 * 8 * (32 + 64));
    // Tied: the state dict holds no lm_head, and the count matches what it holds.
    let sd = model.state_dict();
    assert!(sd.iter().all(|(n, _)| n != "lm_head.weight"));
    let stored: i64 = sd.iter().map(|(_, t)| t.numel() as i64).sum();
    assert_eq!(total, stored + trainable);
    // B = 0: the adapted model still computes the base logits.
    let r = read_tensors(&dir.join("reference.safetensors"));
    let ids = r["input_ids"].narrow(0, 0, 1).to_device(device());
    let logits = tch::no_grad(|| model.forward(&ids, None, Mode::Eval));
    assert!(max_abs_diff(&logits, &r["logits_nomask"]) <= 1e-4);
}

fn quick_config() -> FinetuneConfig {
    FinetuneConfig {
        lora: LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: Some(
                ["gate_proj", "up_proj", "down_proj", "q_proj", "v_proj"]
                    .map(String::from)
                    .to_vec(),
            ),
        },
        learning_rate: 3e-2,
        batch_size: 8,
        max_steps: Some(40),
        device: device_spec(),
        threads: Some(1),
        ..FinetuneConfig::default()
    }
}

fn assert_learns(cfg: &FinetuneConfig, fixture: &str, factor: f64) {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let m = finetune(
        cfg,
        &fixtures().join(fixture),
        &data,
        &tmp.path().join("out"),
    )
    .unwrap();
    assert_eq!(m.steps, 40);
    assert!(
        m.loss_last < factor * m.loss_first,
        "{fixture}: loss {} → {}",
        m.loss_first,
        m.loss_last
    );
}

#[test]
fn llama_lora_loss_falls_on_a_memorisable_set() {
    assert_learns(&quick_config(), "llama_tied", 0.3);
}

#[test]
fn mistral_qlora_trains_through_nf4_weights() {
    let cfg = FinetuneConfig {
        quantize: Quantize::Nf4,
        double_quant: true,
        ..quick_config()
    };
    assert_learns(&cfg, "mistral", 0.3);
}

#[test]
fn llama_bf16_training_learns() {
    let cfg = FinetuneConfig {
        dtype: DType::Bf16,
        ..quick_config()
    };
    assert_learns(&cfg, "llama_untied", 0.5);
}

/// Trains a few steps on `fixture`, checks the adapter in PEFT and the merged folder.
fn adapter_roundtrip(fixture: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let model_dir = fixtures().join(fixture);
    let cfg = FinetuneConfig {
        max_steps: Some(6),
        save_merged: true,
        learning_rate: 1e-2,
        batch_size: 3,
        lora: LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: Some(
                ["gate_proj", "up_proj", "down_proj", "o_proj", "k_proj"]
                    .map(String::from)
                    .to_vec(),
            ),
        },
        device: device_spec(),
        threads: Some(1),
        ..FinetuneConfig::default()
    };
    let out = tmp.path().join("out");
    finetune(&cfg, &model_dir, &data, &out).unwrap();
    let adapter = out.join("adapter");
    let keys: Vec<String> = read_tensors(&adapter.join("adapter_model.safetensors"))
        .into_keys()
        .collect();
    assert!(
        keys.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight".to_string()),
        "{keys:?}"
    );

    let mut model = load_causal_lm(&model_dir, DType::F32, device()).unwrap();
    assert_eq!(load_adapter(model.as_mut(), &adapter).unwrap(), 2 * 5);
    let r = read_tensors(&model_dir.join("reference.safetensors"));
    let ids = r["input_ids"].narrow(0, 0, 1);
    let logits = tch::no_grad(|| model.forward(&ids.to_device(device()), None, Mode::Eval))
        .to_device(tch::Device::Cpu);
    assert!(
        max_abs_diff(&logits, &r["logits_nomask"]) > 1e-3,
        "training changed the model"
    );
    let file = tmp.path().join("tuna_logits.safetensors");
    Tensor::write_safetensors(
        &[
            ("input_ids", ids.contiguous()),
            ("logits", logits.contiguous()),
        ],
        &file,
    )
    .unwrap();
    run_py("check_peft.py", &[&model_dir, &adapter, &file]);

    let merged = load_causal_lm(&out.join("merged"), DType::F32, device()).unwrap();
    let merged_logits = tch::no_grad(|| merged.forward(&ids.to_device(device()), None, Mode::Eval));
    assert!(max_abs_diff(&merged_logits, &logits) <= 1e-4);
    let stored = read_tensors(&out.join("merged/model.safetensors"));
    let tied = fixture == "llama_tied";
    assert_eq!(stored.contains_key("lm_head.weight"), !tied, "{fixture}");
}

#[test]
fn llama_adapter_loads_in_peft_with_the_same_logits_and_merges() {
    adapter_roundtrip("llama_tied");
    adapter_roundtrip("llama_untied");
}

#[tokio::test]
async fn the_model_server_answers_on_a_llama() {
    let srv = start_on("llama_tied").await;
    let prompt = "question: what colour is the sky? answer:";
    let (status, out) = srv.post("/process", helm_request(prompt, 3)).await;
    assert_eq!(status, 200, "{out}");
    let tokens = out["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() <= 3, "{out}");

    // The first token is the model's argmax after the prompt (with <s> prepended).
    let dir = fixtures().join("llama_tied");
    let tok = TextTokenizer::from_model_dir(&dir).unwrap();
    let ids = tok.encode(prompt, true).unwrap();
    assert_eq!(ids[0], 1, "<s> first");
    let model = load_causal_lm(&dir, DType::F32, device()).unwrap();
    let input = Tensor::from_slice(&ids).view([1, -1]).to_device(device());
    let logp = tch::no_grad(|| model.forward(&input, None, Mode::Eval))
        .get(0)
        .get(ids.len() as i64 - 1)
        .log_softmax(-1, Kind::Float)
        .to_device(tch::Device::Cpu);
    let best = logp.argmax(-1, false).int64_value(&[]);
    assert_eq!(tokens[0]["text"], tok.decode_token(best).unwrap());
    assert!((tokens[0]["logprob"].as_f64().unwrap() - logp.double_value(&[best])).abs() < 1e-4);

    let (status, out) = srv
        .post("/tokenize", serde_json::json!({"text": prompt}))
        .await;
    assert_eq!(status, 200, "{out}");
    assert!(!out["tokens"].as_array().unwrap().is_empty(), "{out}");
    srv.shutdown().await;
}
