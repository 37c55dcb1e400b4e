//! Artifacts and the model registry through a real MLflow server: a `finetune` step (tuna-ml on
//! a tiny random model) gets its adapter and finetune.json uploaded through the server's
//! artifact proxy and its adapter registered as a model version (named by `register_as`), once
//! per tuna attempt even when the step is sent again; an output over `max_artifact_size` is a
//! tag with its digest and location; `register_as` naming a step that is not a finetune is an
//! error at its position; workflows/neurips-qlora.yaml becomes one parent, a run per step and
//! one registered version per finetune step.

use serde_json::{Value, json};
use tuna_tests::mlflow::{Mlflow, run_id, tag};
use tuna_tests::{Project, Run, tuna_ml_bin};

/// `base` and `prepare` of the kinds tests, then a short `finetune`.
fn workflow() -> String {
    format!(
        r#"name: track-art
tracking:
  max_artifact_size: 64KiB
  register_as:
    ft: tiny-adapter
steps:{}
  ft:
    uses: finetune
    with:
      model: ${{{{ steps.base.outputs.model/ }}}}
      data: ${{{{ steps.prepare.outputs.train.jsonl }}}}
      max_steps: 2
      batch_size: 4
      lora: {{ r: 4, alpha: 8 }}
"#,
        crate::kinds::BASE
    )
}

fn tracked(p: &Project, m: &Mlflow, exp: &str, args: &[&str]) -> Run {
    let out = p
        .tuna()
        .env("MLFLOW_TRACKING_URI", m.uri())
        .env("MLFLOW_EXPERIMENT_NAME", exp)
        .args(args)
        .output()
        .expect("run tuna");
    Run::from(out)
}

fn step_run(m: &Mlflow, exp: &str, step: &str) -> Value {
    m.runs(exp)
        .into_iter()
        .find(|r| tag(r, "tuna.step") == Some(step))
        .unwrap_or_else(|| panic!("no MLflow run for {step}"))
}

/// Every artifact path under `path` of MLflow run `run`.
fn artifacts(m: &Mlflow, run: &str, path: &str) -> Vec<String> {
    let (status, v) = m.get("artifacts/list", &[("run_id", run), ("path", path)]);
    assert_eq!(status, 200, "{v}");
    let mut out = Vec::new();
    for f in v["files"].as_array().into_iter().flatten() {
        let p = f["path"].as_str().unwrap().to_string();
        if f["is_dir"] == true {
            out.extend(artifacts(m, run, &p));
        } else {
            out.push(p);
        }
    }
    out
}

fn versions(m: &Mlflow, name: &str) -> Vec<Value> {
    let filter = format!("name = '{name}'");
    let (status, v) = m.get("model-versions/search", &[("filter", &filter)]);
    assert_eq!(status, 200, "{v}");
    v["model_versions"].as_array().cloned().unwrap_or_default()
}

fn version_tag<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}

#[test]
fn a_finetune_adapter_is_uploaded_and_registered_once_and_big_outputs_are_tags() {
    tuna_ml_bin();
    let m = Mlflow::shared();
    let p = Project::new();
    p.file("data/train.jsonl", &crate::kinds::data());
    p.file("wf.yaml", &workflow());
    let exp = "tuna-e2e-artifacts";
    let id = tracked(&p, m, exp, &["run", "wf.yaml"]).ok().run_id();

    let ft = step_run(m, exp, "ft");
    let ft_id = run_id(&ft).to_string();
    let files = artifacts(m, &ft_id, "");
    for want in [
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "finetune.json",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} in {files:?}");
    }
    let prepare = step_run(m, exp, "prepare");
    let files = artifacts(m, run_id(&prepare), "");
    assert!(files.iter().any(|f| f == "train.jsonl"), "{files:?}");
    // The model folder is over 64 KiB: a tag with its digest and location, not uploaded.
    let base = step_run(m, exp, "base");
    let model = tag(&base, "tuna.output.model").expect("model tag");
    assert!(model.contains("over max_artifact_size"), "{model}");
    assert!(model.contains("tuna's artifact store"), "{model}");
    assert!(artifacts(m, run_id(&base), "").is_empty());

    let (status, reg) = m.get("registered-models/get", &[("name", "tiny-adapter")]);
    assert_eq!(status, 200, "{reg}");
    let vs = versions(m, "tiny-adapter");
    assert_eq!(vs.len(), 1, "{vs:?}");
    let v = &vs[0];
    assert_eq!(v["run_id"], ft_id.as_str());
    assert_eq!(v["source"], format!("runs:/{ft_id}/adapter").as_str());
    assert_eq!(version_tag(v, "tuna.run_id"), Some(id.as_str()));
    assert_eq!(
        version_tag(v, "tuna.base_model"),
        Some("steps.base.outputs.model/")
    );
    assert_eq!(tag(&ft, "tuna.registered_model"), Some("tiny-adapter"));

    // The step sent again whole (its sent marker removed): the same attempt makes no second
    // version, and no metric point is doubled.
    let losses = m.history(&ft_id, "loss").len();
    assert!(losses >= 2, "{losses}");
    m.post(
        "runs/delete-tag",
        &json!({ "run_id": ft_id, "key": "tuna.logged" }),
    );
    let r = tracked(&p, m, exp, &["track", "sync", &id]).ok();
    assert!(r.stdout.contains("steps sent: 1"), "{}", r.stdout);
    assert_eq!(versions(m, "tiny-adapter").len(), 1);
    assert_eq!(m.history(&ft_id, "loss").len(), losses);
}

#[test]
fn register_as_must_name_a_finetune_step() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: reg\ntracking:\n  register_as:\n    a: some-model\n    nope: x\nsteps:\n  a:\n    run: echo a\n",
    );
    let r = p.run(&["validate", "wf.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("wf.yaml:4:5"), "{}", r.stderr);
    assert!(
        r.stderr.contains("not a `uses: finetune` step"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("wf.yaml:5:5"), "{}", r.stderr);
    assert!(
        r.stderr.contains("not a step of this workflow"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_neurips_workflow_is_one_parent_a_run_per_step_and_three_registered_adapters() {
    tuna_ml_bin();
    let m = Mlflow::shared();
    let p = Project::new();
    let wf = tuna_tests::workspace_root().join("workflows/neurips-qlora.yaml");
    let exp = "tuna-e2e-neurips";
    let id = tracked(&p, m, exp, &["run", wf.to_str().unwrap()])
        .ok()
        .run_id();
    let runs = m.runs(exp);
    let parents: Vec<&Value> = runs
        .iter()
        .filter(|r| tag(r, "tuna.step").is_none())
        .collect();
    assert_eq!(parents.len(), 1);
    assert_eq!(tag(parents[0], "tuna.run_id"), Some(id.as_str()));
    let mut steps: Vec<&str> = runs.iter().filter_map(|r| tag(r, "tuna.step")).collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            "base",
            "helm-eval",
            "prepare",
            "qlora",
            "sample",
            "scale-up",
            "serve",
            "smoke"
        ]
    );
    for step in ["smoke", "scale-up", "qlora"] {
        let r = step_run(m, exp, step);
        let files = artifacts(m, run_id(&r), "");
        assert!(
            files
                .iter()
                .any(|f| f == "adapter/adapter_model.safetensors"),
            "{step}: {files:?}"
        );
        assert!(!m.history(run_id(&r), "loss").is_empty(), "{step}");
        let name = format!("neurips-qlora-{step}");
        let vs = versions(m, &name);
        assert_eq!(vs.len(), 1, "{name}: {vs:?}");
        assert_eq!(vs[0]["run_id"], run_id(&r));
    }
    let helm = step_run(m, exp, "helm-eval");
    let outputs = helm["data"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["key"].as_str().unwrap().starts_with("tuna.output."))
        .count();
    assert!(outputs > 0, "HELM's outputs are described: {helm}");
    assert!(
        !artifacts(m, run_id(&helm), "").is_empty(),
        "HELM's summary is small: uploaded"
    );
}
