//! The shipped example workflows run end to end.

use tuna_tests::{Project, workspace_root};

fn run_example(name: &str) -> (Project, String) {
    let p = Project::new();
    let src = workspace_root().join("workflows");
    let r = p.tuna().arg("run").arg(src.join(name)).output().unwrap();
    let r = tuna_tests::Run::from(r).ok();
    (p, r.run_id())
}

#[test]
fn quickstart_runs_then_is_cached() {
    let (p, id) = run_example("quickstart.yaml");
    let st = p.status(&id);
    assert_eq!(st["status"], "passed");
    let again = p
        .tuna()
        .arg("run")
        .arg(workspace_root().join("workflows/quickstart.yaml"))
        .output()
        .unwrap();
    let again = tuna_tests::Run::from(again).ok();
    let statuses = p.step_statuses(&again.run_id());
    for (name, status) in &statuses {
        // `summary` says `cache: false`: it always runs
        let want = if name == "summary" {
            "passed"
        } else {
            "cached"
        };
        assert_eq!(status, want, "{statuses:?}");
    }
}

#[test]
fn neurips_qlora_pipeline_runs() {
    tuna_tests::tuna_ml_bin();
    let (p, id) = run_example("neurips-qlora.yaml");
    let st = p.status(&id);
    assert_eq!(st["status"], "passed", "{st}");
    let step = |name: &str| {
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {st}"))
            .clone()
    };
    for name in [
        "base",
        "prepare",
        "smoke",
        "scale-up",
        "qlora",
        "serve",
        "sample",
        "helm-eval",
    ] {
        assert_eq!(step(name)["status"], "passed", "{name}: {st}");
    }
    let smoke = &step("smoke")["metrics"];
    assert!(
        smoke["projected_hours_a100"].as_f64().unwrap() > 0.0,
        "{smoke}"
    );
    let qlora = &step("qlora")["metrics"];
    assert!(
        qlora["loss_last"].as_f64().unwrap() < qlora["loss_first"].as_f64().unwrap(),
        "{qlora}"
    );
    // The held-out loss of data.prepare's val.jsonl: every 4 steps and after the last, the
    // last one a metric (the step's gate uses it).
    assert!(
        qlora["eval_loss"].as_f64().unwrap() < qlora["loss_first"].as_f64().unwrap(),
        "{qlora}"
    );
    let curve: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.home()
                .join(format!("runs/{id}/qlora/1/work/finetune.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let steps = curve["eval_steps"].as_array().unwrap();
    assert!(steps.len() >= 2, "{curve}");
    assert_eq!(curve["eval_losses"].as_array().unwrap().len(), steps.len());
    assert_eq!(steps.last().unwrap(), &curve["steps"], "{curve}");
    assert!(step("smoke")["metrics"]["eval_loss"].as_f64().is_some());
    // NF4 keeps the frozen linear weights in about a quarter of fp32's bytes (plus scales).
    let dense = step("scale-up")["metrics"]["base_linear_bytes"]
        .as_f64()
        .unwrap();
    assert!(
        qlora["base_linear_bytes"].as_f64().unwrap() < 0.3 * dense,
        "{qlora}"
    );
    // The server the `serve` step started answered the `sample` step and was stopped at the end.
    let sample = p.run(&["logs", &id, "sample"]).ok().stdout;
    assert!(sample.contains("sample: '"), "{sample}");
    let endpoint: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.home()
                .join(format!("runs/{id}/serve/1/work/endpoint.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let pid = endpoint["pid"].as_i64().unwrap() as i32;
    tuna_tests::wait_until(
        std::time::Duration::from_secs(10),
        "the server to stop",
        || !tuna_tests::alive(pid),
    );
    // HELM's scores of the served adapter became metrics.
    let helm = &step("helm-eval")["metrics"];
    for key in [
        "simple_mcqa_exact_match",
        "simple_classification_exact_match",
    ] {
        let v = helm[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {helm}"));
        assert!((0.0..=1.0).contains(&v), "{helm}");
    }
}
