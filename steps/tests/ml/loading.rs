//! Malformed model folders give errors that name the problem.

use tuna_steps::ml::{DType, load_causal_lm};

use crate::common::{device, fixture_copy};

pub(crate) fn load_err(dir: &std::path::Path) -> String {
    match load_causal_lm(dir, DType::F32, device()) {
        Ok(_) => panic!("{} loaded although it is malformed", dir.display()),
        Err(e) => e.to_string(),
    }
}

pub(crate) fn edit_config(
    dir: &std::path::Path,
    f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn missing_folder_and_files_are_named() {
    let e = load_err(std::path::Path::new("/nonexistent/tuna-model"));
    assert!(e.contains("not a directory"), "{e}");

    let d = fixture_copy("pre_ln");
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("config.json"), "{e}");

    let d = fixture_copy("pre_ln");
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(
        e.contains("no model.safetensors or model.safetensors.index.json"),
        "{e}"
    );

    let d = fixture_copy("sharded");
    std::fs::remove_file(d.path().join("model-00002-of-00006.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(
        e.contains("model-00002-of-00006.safetensors") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn wrong_types_and_architectures_are_named() {
    let d = fixture_copy("pre_ln");
    edit_config(d.path(), |c| {
        c.insert("hidden_size".into(), "thirty-two".into());
    });
    let e = load_err(d.path());
    assert!(
        e.contains("`hidden_size`") && e.contains("positive integer"),
        "{e}"
    );

    let d = fixture_copy("pre_ln");
    edit_config(d.path(), |c| {
        c.remove("num_hidden_layers");
    });
    let e = load_err(d.path());
    assert!(e.contains("`num_hidden_layers` is missing"), "{e}");

    let d = fixture_copy("pre_ln");
    edit_config(d.path(), |c| {
        c.insert("model_type".into(), "gpt2".into());
    });
    let e = load_err(d.path());
    assert!(
        e.contains("unsupported architecture `gpt2`") && e.contains("opt"),
        "{e}"
    );

    let d = fixture_copy("pre_ln");
    std::fs::write(d.path().join("config.json"), "{not json").unwrap();
    let e = load_err(d.path());
    assert!(e.contains("not valid JSON"), "{e}");
}

#[test]
fn weights_that_disagree_with_the_config_are_named() {
    let d = fixture_copy("pre_ln");
    edit_config(d.path(), |c| {
        c.insert("ffn_dim".into(), 128.into());
    });
    let e = load_err(d.path());
    assert!(
        e.contains("layers.0.fc1.weight") && e.contains("shape"),
        "{e}"
    );
}
