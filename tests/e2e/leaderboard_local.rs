//! Leaderboard rows from plain `tuna run` / `tuna resume` (no daemon): the shipped example's
//! list of checkpoints gives one row per checkpoint and metric; recording a run again adds no
//! rows; an entry whose step failed adds none until a resume makes it pass.

use tuna_tests::{Project, workspace_root};

fn board(p: &Project) -> serde_json::Value {
    let r = p.run(&["leaderboard", "--format", "json"]).ok();
    serde_json::from_str(&r.stdout).expect("leaderboard json")
}

fn models_and_metrics(v: &serde_json::Value) -> Vec<(String, String)> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["model"].as_str().unwrap().to_string(),
                e["metric"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_local_run_of_the_nightly_example_records_a_row_per_checkpoint_and_metric() {
    tuna_tests::tuna_ml_bin();
    let p = Project::new();
    let text = std::fs::read_to_string(workspace_root().join("workflows/nightly-leaderboard.yaml"))
        .unwrap();
    p.file("nightly-leaderboard.yaml", &text);
    let data =
        std::fs::read_to_string(workspace_root().join("workflows/data/neurips-sample.jsonl"))
            .unwrap();
    p.file("data/neurips-sample.jsonl", &data);
    let run = p
        .run(&["run", "nightly-leaderboard.yaml", "-p", "instances=3"])
        .ok();
    assert!(
        run.stderr.contains("leaderboard: recorded 9 rows"),
        "{}",
        run.stderr
    );
    let id = run.run_id();
    let v = board(&p);
    let mut want = Vec::new();
    for ckpt in ["step-16", "step-4", "step-8"] {
        for metric in [
            "simple_classification_logprob_per_byte",
            "simple_mcqa_exact_match",
            "simple_mcqa_logprob_per_byte",
        ] {
            want.push((format!("opt-tiny-qlora@{ckpt}"), metric.to_string()));
        }
    }
    assert_eq!(models_and_metrics(&v), want);
    let nights: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["night"].as_str().unwrap())
        .collect();
    let night = nights[0];
    assert!(
        night.len() == 10 && nights.iter().all(|n| *n == night),
        "one night, the run's UTC date: {nights:?}"
    );
    for e in v["entries"].as_array().unwrap() {
        assert_eq!(e["suite"], "helm-simple");
        assert_eq!(e["run"], id.as_str());
        assert_eq!(e["delta"], serde_json::Value::Null, "a first night");
        let x = e["value"].as_f64().unwrap();
        if e["metric"] == "simple_mcqa_exact_match" {
            assert!((0.0..=1.0).contains(&x), "{e}");
        } else {
            assert!(x < 0.0, "HELM's log-probability per byte is negative: {e}");
        }
    }
    assert_eq!(v["history"].as_array().unwrap().len(), 9);

    // Recording the same run again (a resume of a passed run records it) doubles nothing.
    let again = p.run(&["resume", &id]).ok();
    assert!(again.stderr.contains("already passed"), "{}", again.stderr);
    let w = board(&p);
    assert_eq!(w["history"].as_array().unwrap().len(), 9);
    assert_eq!(w["entries"], v["entries"]);
}

const FLAKY: &str = r#"name: three-checkpoints
params:
  family: tiny
leaderboard:
  - { step: eval-a, model: "${{ params.family }}-a", metrics: [acc, em] }
  - { step: eval-b, model: "${{ params.family }}-b", metrics: [acc, em] }
  - { step: eval-c, model: "${{ params.family }}-c", metrics: [acc, em], suite: other }
steps:
  eval-a:
    run: |
      echo '{"acc": 0.5, "em": 0.25, "loss": 2}' > "$TUNA_METRICS"
  eval-b:
    run: |
      echo '{"acc": 0.625, "em": 0.375}' > "$TUNA_METRICS"
  eval-c:
    run: |
      test -f GATE
      echo '{"acc": 0.75, "em": 0.5}' > "$TUNA_METRICS"
"#;

#[test]
fn only_entries_whose_step_passed_add_rows_and_a_resume_adds_the_rest() {
    let p = Project::new();
    p.file(
        "w.yaml",
        &FLAKY.replace("GATE", &p.path("ready").display().to_string()),
    );
    let r = p.run(&["run", "w.yaml", "-p", "family=ckpt"]);
    assert_eq!(r.code, 1, "eval-c fails: {}", r.stderr);
    let id = r.run_id();
    let v = board(&p);
    assert_eq!(
        models_and_metrics(&v),
        [
            ("ckpt-a".to_string(), "acc".to_string()),
            ("ckpt-a".into(), "em".into()),
            ("ckpt-b".into(), "acc".into()),
            ("ckpt-b".into(), "em".into()),
        ],
        "no row for the failed checkpoint, none for unlisted metrics"
    );
    p.file("ready", "");
    let r = p.run(&["resume", &id]).ok();
    assert!(
        r.stderr.contains("leaderboard: recorded 6 rows"),
        "{}",
        r.stderr
    );
    let v = board(&p);
    assert_eq!(v["history"].as_array().unwrap().len(), 6, "no double rows");
    let c: Vec<_> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["model"] == "ckpt-c")
        .map(|e| {
            (
                e["suite"].as_str().unwrap(),
                e["metric"].as_str().unwrap(),
                e["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(c, [("other", "acc", 0.75), ("other", "em", 0.5)]);
}
