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
    let (p, id) = run_example("neurips-qlora.yaml");
    let st = p.status(&id);
    assert_eq!(st["status"], "passed", "{st}");
    let names: Vec<&str> = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for want in ["prepare", "smoke", "scale-up", "qlora", "helm-eval"] {
        assert!(names.contains(&want), "{names:?}");
    }
}
