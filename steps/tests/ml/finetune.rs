//! The fine-tuning loop: resume from checkpoints (eval points included), PEFT-compatible
//! output, merged model, metrics with projection, and data errors.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::Tensor;
use tuna_steps::ml::finetune::{
    FinetuneConfig, FinetuneHooks, StepReport, finetune, finetune_with,
};
use tuna_steps::ml::{DType, LoraConfig, MlError, Mode, load_adapter, load_causal_lm};

use crate::common::{device, device_spec, fixtures, max_abs_diff, read_tensors, run_py};
use crate::data::memorise_jsonl;

fn config() -> FinetuneConfig {
    FinetuneConfig {
        lora: LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: None,
        },
        learning_rate: 1e-2,
        batch_size: 3,
        grad_accum: 2,
        warmup_steps: 2,
        device: device_spec(),
        threads: Some(1),
        ..FinetuneConfig::default()
    }
}

/// Equal lengths and values within 1e-4 (relative above 1).
fn assert_close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

#[test]
fn resumed_run_continues_from_its_checkpoint_and_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let model = fixtures().join("pre_ln");
    let cfg = FinetuneConfig {
        max_steps: Some(8),
        checkpoint_every: 3,
        group_by_length: true,
        eval_every: Some(2),
        ..config()
    };
    let eval = Some(data.as_path());

    let whole = finetune_with(
        &cfg,
        &model,
        &data,
        eval,
        &tmp.path().join("whole"),
        &FinetuneHooks::default(),
    )
    .unwrap();
    assert_eq!(whole.steps, 8);
    assert_eq!(whole.resumed_from_step, 0);
    assert_eq!(whole.eval_steps, vec![2, 4, 6, 8]);

    // Stopped after step 5 (as a kill would): the checkpoint of step 3 is the newest.
    let out = tmp.path().join("interrupted");
    let stop = AtomicBool::new(false);
    let on_step = |r: &StepReport| {
        if r.step == 5 {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let hooks = FinetuneHooks {
        cancel: Some(&stop),
        on_step: Some(&on_step),
    };
    match finetune_with(&cfg, &model, &data, eval, &out, &hooks) {
        Err(MlError::Cancelled { step: 5 }) => {}
        other => panic!("expected a stop after step 5, got {other:?}"),
    }
    assert!(out.join("checkpoints/step-00000003/state.json").is_file());
    assert!(!out.join("adapter").exists());

    let steps_seen = std::sync::Mutex::new(Vec::new());
    let record = |r: &StepReport| steps_seen.lock().unwrap().push(r.step);
    let hooks = FinetuneHooks {
        cancel: None,
        on_step: Some(&record),
    };
    let resumed = finetune_with(&cfg, &model, &data, eval, &out, &hooks).unwrap();
    assert_eq!(resumed.resumed_from_step, 3);
    assert_eq!(
        *steps_seen.lock().unwrap(),
        vec![4, 5, 6, 7, 8],
        "the step counter continues"
    );
    assert_eq!(resumed.steps, 8);
    assert_close(&whole.losses, &resumed.losses);
    assert!((whole.loss_last - resumed.loss_last).abs() <= 1e-4);
    // The evaluation of step 2 was done before the stop: it comes back from the checkpoint.
    assert_eq!(resumed.eval_steps, whole.eval_steps);
    assert_close(&whole.eval_losses, &resumed.eval_losses);
    assert_eq!(resumed.eval_loss, resumed.eval_losses.last().copied());
    // Only the newest checkpoints are kept (3 and 6).
    let kept: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");

    // A checkpoint from other settings is refused, not silently mixed in.
    let other = FinetuneConfig {
        learning_rate: 5e-3,
        eval_every: None,
        ..cfg.clone()
    };
    std::fs::remove_dir_all(out.join("adapter")).unwrap();
    let e = finetune(&other, &model, &data, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}

#[test]
fn adapter_loads_in_peft_with_the_same_logits_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let model_dir = fixtures().join("post_ln_proj");
    let cfg = FinetuneConfig {
        max_steps: Some(6),
        save_merged: true,
        lora: LoraConfig {
            targets: Some(vec![
                "fc1".into(),
                "fc2".into(),
                "q_proj".into(),
                "project_out".into(),
            ]),
            ..config().lora
        },
        ..config()
    };
    let out = tmp.path().join("out");
    finetune(&cfg, &model_dir, &data, &out).unwrap();
    let adapter = out.join("adapter");
    let acfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(acfg["r"], 4);
    assert_eq!(
        acfg["target_modules"],
        serde_json::json!(["fc1", "fc2", "q_proj", "project_out"])
    );
    let keys: Vec<String> = read_tensors(&adapter.join("adapter_model.safetensors"))
        .into_keys()
        .collect();
    assert!(
        keys.contains(&"base_model.model.model.decoder.layers.1.fc1.lora_A.weight".to_string()),
        "{keys:?}"
    );

    let mut model = load_causal_lm(&model_dir, DType::F32, device()).unwrap();
    assert_eq!(load_adapter(model.as_mut(), &adapter).unwrap(), 2 * 3 + 1);
    let r = read_tensors(&model_dir.join("reference.safetensors"));
    let ids = r["input_ids"].narrow(0, 0, 1);
    let logits = tch::no_grad(|| model.forward(&ids, None, Mode::Eval));
    assert!(
        max_abs_diff(&logits, &r["logits_nomask"]) > 1e-3,
        "training changed the model"
    );
    let file = tmp.path().join("tuna_logits.safetensors");
    Tensor::write_safetensors(
        &[
            ("input_ids", ids.to_device(tch::Device::Cpu).contiguous()),
            ("logits", logits.to_device(tch::Device::Cpu).contiguous()),
        ],
        &file,
    )
    .unwrap();
    run_py("check_peft.py", &[&model_dir, &adapter, &file]);

    // The merged folder computes the same logits without any adapter.
    let merged = load_causal_lm(&out.join("merged"), DType::F32, device()).unwrap();
    let merged_logits = tch::no_grad(|| merged.forward(&ids, None, Mode::Eval));
    assert!(max_abs_diff(&merged_logits, &logits) <= 1e-4);
    assert!(out.join("merged/tokenizer.json").is_file());
}

#[test]
fn metrics_and_smoke_projection() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let cfg = FinetuneConfig {
        max_steps: Some(2),
        epochs: 3,
        gpu: Some("t4".into()),
        gpu_speeds: [("t4".to_string(), 1.0), ("a100".to_string(), 8.0)].into(),
        ..config()
    };
    let out = tmp.path().join("out");
    let m = finetune(&cfg, &fixtures().join("pre_ln"), &data, &out).unwrap();
    assert_eq!(m.losses.len(), 2);
    assert_eq!(m.examples, 8);
    assert!(m.tokens_per_s > 0.0 && m.peak_memory_bytes > 0);
    assert!(m.trainable_params > 0 && m.trainable_share > 0.0 && m.trainable_share < 0.2);
    // projected_hours: the full data × 3 epochs, the first step (its warm-up) once and the
    // other tokens at the second step's speed.
    let (s, t) = (&m.step_seconds, &m.step_tokens);
    assert_eq!((s.len(), t.len()), (2, 2));
    let full = m.dataset_tokens as f64 * 3.0;
    let expected = (s[0] + (full - t[0] as f64) * s[1] / t[1] as f64) / 3600.0;
    assert!((m.projected_hours - expected).abs() <= 1e-9 * expected.max(1.0));
    assert!((m.projected_by_gpu["projected_hours_a100"] - m.projected_hours / 8.0).abs() < 1e-12);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "loss_first",
        "loss_last",
        "losses",
        "tokens_per_s",
        "peak_memory_bytes",
        "trainable_params",
        "trainable_share",
        "projected_hours",
        "projected_hours_a100",
        "projected_hours_t4",
    ] {
        assert!(json.get(key).is_some(), "metrics.json lacks {key}: {json}");
    }
}

#[test]
fn malformed_data_lines_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixtures().join("pre_ln");
    let cases = [
        (
            "{\"prompt\": \"a\", \"completion\": \"b\"}\n\n{\"prompt\": \"a\"}\n",
            ":3:",
            "missing `completion`",
        ),
        (
            "{\"prompt\": \"a\", \"completion\": 7}\n",
            ":1:",
            "`completion` must be a string",
        ),
        ("[1, 2]\n", ":1:", "expected a JSON object"),
        (
            "{\"prompt\": \"a\", \"completion\": \"b\"}\nnot json\n",
            ":2:",
            "not a JSON object",
        ),
        ("\n\n", ":0:", "no usable examples"),
    ];
    for (text, line, what) in cases {
        let data = tmp.path().join("bad.jsonl");
        std::fs::write(&data, text).unwrap();
        let e = finetune(&config(), &model, &data, &tmp.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("bad.jsonl{line}")) && e.contains(what),
            "{text:?} gave: {e}"
        );
    }
    let bad = FinetuneConfig {
        batch_size: 0,
        ..config()
    };
    let e = finetune(
        &bad,
        &model,
        &tmp.path().join("bad.jsonl"),
        &tmp.path().join("out"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("batch_size"), "{e}");
    let e = FinetuneConfig::from_value(serde_json::json!({"lora": {"rank": 8}}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rank"), "{e}");
}
