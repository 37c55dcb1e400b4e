//! tuna's Llama and Mistral against transformers' logits (fp32 to 1e-4), and config values
//! that would compute something else refused by name.

use serde_json::json;
use tch::Kind;
use tuna_steps::ml::{DType, Mode, load_causal_lm};

use crate::common::{device, fixture_copy, max_abs_diff, read_tensors};
use crate::loading::{edit_config, load_err};
use crate::parity::{assert_bf16_close, assert_right_padding_invariant, compare};

#[test]
fn llama_with_grouped_query_attention_and_tied_head_matches_transformers_fp32() {
    let d = compare("llama_tied", DType::F32);
    assert!(d <= 1e-4, "max |Δlogit| = {d}");
}

#[test]
fn llama_with_biases_head_dim_and_untied_head_matches_transformers_fp32() {
    let d = compare("llama_untied", DType::F32);
    assert!(d <= 1e-4, "max |Δlogit| = {d}");
}

#[test]
fn mistral_with_a_sliding_window_matches_transformers_fp32() {
    let d = compare("mistral", DType::F32);
    assert!(d <= 1e-4, "max |Δlogit| = {d}");

    // The window matters for these 12 tokens: without it the logits differ.
    let dir = fixture_copy("mistral");
    edit_config(dir.path(), |c| {
        c.insert("sliding_window".into(), serde_json::Value::Null);
    });
    let model = load_causal_lm(dir.path(), DType::F32, device()).unwrap();
    let r = read_tensors(&dir.path().join("reference.safetensors"));
    let ids = r["input_ids"].narrow(0, 0, 1).to_device(device());
    let logits = tch::no_grad(|| model.forward(&ids, None, Mode::Eval));
    assert!(max_abs_diff(&logits, &r["logits_nomask"]) > 0.1);
}

#[test]
fn llama_bf16_stays_close_to_fp32_reference() {
    assert_bf16_close("llama_tied");
}

#[test]
fn right_padding_does_not_change_real_tokens() {
    assert_right_padding_invariant("llama_untied");
}

#[test]
fn older_configs_with_top_level_rope_theta_load_the_same() {
    // Configs written before transformers 5 carry `rope_theta` and `rope_scaling: null`.
    let dir = fixture_copy("llama_tied");
    edit_config(dir.path(), |c| {
        c.remove("rope_parameters");
        c.insert("rope_theta".into(), json!(500.0));
        c.insert("rope_scaling".into(), serde_json::Value::Null);
        c.remove("head_dim");
    });
    let model = load_causal_lm(dir.path(), DType::F32, device()).unwrap();
    assert_eq!(model.info().architecture, "llama");
    let r = read_tensors(&dir.path().join("reference.safetensors"));
    let ids = r["input_ids"].narrow(0, 0, 1).to_device(device());
    let logits = tch::no_grad(|| model.forward(&ids, None, Mode::Eval)).to_kind(Kind::Float);
    assert!(max_abs_diff(&logits, &r["logits_nomask"]) <= 1e-4);

    // A different theta changes the result: the key is read, not ignored.
    edit_config(dir.path(), |c| {
        c.insert("rope_theta".into(), json!(10000.0));
    });
    let model = load_causal_lm(dir.path(), DType::F32, device()).unwrap();
    let logits = tch::no_grad(|| model.forward(&ids, None, Mode::Eval));
    assert!(max_abs_diff(&logits, &r["logits_nomask"]) > 1e-3);
}

/// Loads `llama_tied` with `edit` applied to its config and returns the error.
fn refused(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let dir = fixture_copy("llama_tied");
    edit_config(dir.path(), edit);
    load_err(dir.path())
}

#[test]
fn unsupported_llama_configs_are_refused_by_key() {
    let e = refused(|c| {
        c.insert(
            "rope_scaling".into(),
            json!({"rope_type": "linear", "factor": 2.0}),
        );
    });
    assert!(e.contains("`rope_scaling`") && e.contains("linear"), "{e}");

    let e = refused(|c| {
        c.insert(
            "rope_parameters".into(),
            json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}),
        );
    });
    assert!(
        e.contains("`rope_parameters`") && e.contains("llama3"),
        "{e}"
    );

    let e = refused(|c| {
        c.insert("hidden_act".into(), json!("gelu"));
    });
    assert!(e.contains("`hidden_act`") && e.contains("gelu"), "{e}");

    let e = refused(|c| {
        c.insert("num_key_value_heads".into(), json!(3));
    });
    assert!(
        e.contains("`num_key_value_heads`") && e.contains("3"),
        "{e}"
    );

    let e = refused(|c| {
        c.insert("rms_norm_eps".into(), json!("small"));
    });
    assert!(e.contains("`rms_norm_eps`"), "{e}");

    let e = refused(|c| {
        c.remove("intermediate_size");
    });
    assert!(e.contains("`intermediate_size` is missing"), "{e}");

    // Weights that disagree with the config name the weight.
    let e = refused(|c| {
        c.insert("intermediate_size".into(), json!(48));
    });
    assert!(
        e.contains("model.layers.0.mlp.gate_proj.weight") && e.contains("shape"),
        "{e}"
    );

    // An untied head must be stored.
    let e = refused(|c| {
        c.insert("tie_word_embeddings".into(), json!(false));
    });
    assert!(e.contains("lm_head.weight") && e.contains("missing"), "{e}");
}
