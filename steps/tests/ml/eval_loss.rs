//! The loss on eval data during fine-tuning: computed without dropout (a second evaluation of
//! the same weights, unbatched and in a fresh model, gives the same number, while the same
//! weights with dropout give another), over completion tokens only with padding masked, at
//! every `eval_every` steps and the last, and falling on a set the model learns by heart.

use std::path::{Path, PathBuf};

use tch::{Kind, Reduction, Tensor};
use tuna_steps::ml::finetune::{FinetuneConfig, FinetuneHooks, finetune_with};
use tuna_steps::ml::{
    CausalLm, DType, LoraConfig, Mode, TextTokenizer, load_adapter, load_causal_lm,
};

use crate::common::{device, device_spec, fixtures};
use crate::data::memorise_jsonl;

/// A copy of the tiny OPT fixture whose config asks for hidden dropout `p` (the fixture has
/// none), so that a forward pass with dropout differs from one without.
fn model_with_dropout(dir: &Path, p: f64) -> PathBuf {
    let to = dir.join("model");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(fixtures().join("pre_ln")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let path = to.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["dropout"] = serde_json::json!(p);
    std::fs::write(&path, cfg.to_string()).unwrap();
    to
}

/// Mean completion-token loss of `model` on `jsonl`, one example at a time (no padding).
fn mean_loss(model: &dyn CausalLm, tok: &TextTokenizer, jsonl: &Path, mode: Mode) -> f64 {
    let eos = model.info().eos_token_id;
    let (mut sum, mut count) = (0.0, 0i64);
    for line in std::fs::read_to_string(jsonl).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut ids = tok.encode(v["prompt"].as_str().unwrap(), true).unwrap();
        let prompt_len = ids.len();
        ids.extend(
            tok.encode(v["completion"].as_str().unwrap(), false)
                .unwrap(),
        );
        ids.extend(eos);
        let targets: Vec<i64> = (1..ids.len())
            .map(|c| if c >= prompt_len { ids[c] } else { -100 })
            .collect();
        count += targets.iter().filter(|&&t| t >= 0).count() as i64;
        let n = ids.len() as i64;
        let input = Tensor::from_slice(&ids).view([1, n]).to_device(device());
        let logits = tch::no_grad(|| model.forward(&input, None, mode));
        let logits = logits
            .to_kind(Kind::Float)
            .view([n, -1])
            .narrow(0, 0, n - 1);
        let targets = Tensor::from_slice(&targets).to_device(device());
        sum += logits
            .cross_entropy_loss::<Tensor>(&targets, None, Reduction::Sum, -100, 0.0)
            .double_value(&[]);
    }
    sum / count as f64
}

#[test]
fn eval_loss_has_no_dropout_masks_padding_and_falls_on_a_set_it_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let model_dir = model_with_dropout(tmp.path(), 0.3);
    let cfg = FinetuneConfig {
        lora: LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.2,
            targets: None,
        },
        learning_rate: 3e-2,
        batch_size: 3,
        max_steps: Some(8),
        eval_every: Some(3),
        device: device_spec(),
        threads: Some(1),
        ..FinetuneConfig::default()
    };
    let out = tmp.path().join("out");
    let hooks = FinetuneHooks::default();
    let m = finetune_with(&cfg, &model_dir, &data, Some(&data), &out, &hooks).unwrap();
    assert_eq!(
        m.eval_steps,
        vec![3, 6, 8],
        "every 3 steps and after the last"
    );
    assert_eq!(m.eval_losses.len(), 3);
    let (first, last) = (m.eval_losses[0], m.eval_losses[2]);
    assert!(
        m.eval_losses.windows(2).all(|w| w[1] < w[0]) && last < first - 0.1,
        "the eval loss falls on a set the model learns: {:?}",
        m.eval_losses
    );
    assert_eq!(m.eval_loss, Some(last));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["eval_loss"], serde_json::json!(last));
    assert_eq!(json["eval_steps"], serde_json::json!([3, 6, 8]));

    // The same weights evaluated again, example by example (no padding) in a fresh model:
    // the same number, so the run's evaluation had no dropout and masked its padding.
    let mut model = load_causal_lm(&model_dir, DType::F32, device()).unwrap();
    load_adapter(model.as_mut(), &out.join("adapter")).unwrap();
    let tok = TextTokenizer::from_model_dir(&model_dir).unwrap();
    let again = mean_loss(model.as_ref(), &tok, &data, Mode::Eval);
    assert!(
        (again - last).abs() <= 1e-4 * last.max(1.0),
        "run {last} vs again {again}"
    );
    assert_eq!(
        mean_loss(model.as_ref(), &tok, &data, Mode::Eval),
        again,
        "twice in a row"
    );
    let dropped = mean_loss(model.as_ref(), &tok, &data, Mode::Train { seed: 7 });
    assert!(
        (dropped - again).abs() > 1e-3,
        "dropout changes the loss of this model ({dropped} vs {again}), so the match above means none was used"
    );
}

#[test]
fn eval_every_without_eval_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = memorise_jsonl(tmp.path());
    let cfg = FinetuneConfig {
        eval_every: Some(2),
        max_steps: Some(2),
        device: device_spec(),
        ..FinetuneConfig::default()
    };
    let e = finetune_with(
        &cfg,
        &fixtures().join("pre_ln"),
        &data,
        None,
        &tmp.path().join("out"),
        &FinetuneHooks::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("eval_every"), "{e}");
}
