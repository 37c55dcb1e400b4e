//! The shipped ML workflows through a real daemon, their files carried by `tuna submit` and
//! `tuna schedule add`: neurips-qlora computes what a local run computes (and a local run in
//! the daemon's home finds its steps cached), and the nightly example registers with its
//! dataset and runs when its fire is forced.

use std::path::PathBuf;
use std::time::Duration;

use tuna_tests::{Project, tuna_ml_bin, wait_until, workspace_root};

use crate::daemon_harness::Serve;
use crate::daemon_project::{received, statuses, steps};

/// The work folder of a step's first attempt.
fn work(p: &Project, run: &str, step: &str) -> PathBuf {
    p.home().join(format!("runs/{run}/{step}/1/work"))
}

#[test]
fn neurips_qlora_through_the_daemon_computes_what_a_local_run_computes() {
    tuna_ml_bin();
    let wf = workspace_root().join("workflows/neurips-qlora.yaml");
    let wf = wf.to_str().unwrap();
    let here = Project::new();
    let local_id = here.run(&["run", wf]).ok().run_id();
    let local = steps(&here.status(&local_id));

    let there = Project::new();
    let d = Serve::start(&there, &[]);
    let r = d.tuna(&there, &["submit", wf, "--follow"]).ok();
    assert!(
        r.stderr.contains("project: 1 file"),
        "the dataset: {}",
        r.stderr
    );
    let id = r.run_id();
    let remote = steps(&d.get_json(&format!("/api/v1/runs/{id}")));
    assert_eq!(remote.len(), local.len());
    for ((name, status, outs), (lname, _, louts)) in remote.iter().zip(&local) {
        assert_eq!(name, lname);
        assert_eq!(status, "passed", "{name}: {remote:?}");
        // The model and the prepared data are byte for byte a local run's.
        if ["base", "prepare"].contains(&name.as_str()) {
            assert_eq!(outs, louts, "{name}");
        }
    }
    // The trained weights too (the rest of a fine-tune's outputs records timings and paths).
    for step in ["smoke", "scale-up", "qlora"] {
        let weights = "adapter/adapter_model.safetensors";
        let a = std::fs::read(work(&there, &id, step).join(weights)).unwrap();
        let b = std::fs::read(work(&here, &local_id, step).join(weights)).unwrap();
        assert!(a == b, "{step}: the adapter weights differ");
    }
    d.kill();
    // In the daemon's home, a local run of the same files finds every training step cached:
    // the daemon's cache keys are a local run's.
    let again = there.run(&["run", wf]).ok();
    for (name, status) in there.step_statuses(&again.run_id()) {
        if ["base", "prepare", "smoke", "scale-up", "qlora"].contains(&name.as_str()) {
            assert_eq!(status, "cached", "{name}");
        }
    }
}

#[test]
fn the_nightly_example_registers_with_its_dataset_and_a_forced_fire_runs_it() {
    tuna_ml_bin();
    let wf = workspace_root().join("workflows/nightly-leaderboard.yaml");
    let wf = wf.to_str().unwrap();
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let r = d.tuna(&p, &["schedule", "add", wf]).ok();
    assert!(
        r.stdout
            .contains("scheduled nightly-leaderboard with project")
            && r.stdout.contains("(2 files)"),
        "the workflow and its dataset: {}",
        r.stdout
    );
    let sent = received(&d);
    assert_eq!(
        sent,
        std::fs::metadata(workspace_root().join("workflows/data/neurips-sample.jsonl"))
            .unwrap()
            .len()
    );
    d.kill();
    // A day later: the 02:30 fire was missed, and `missed: latest` runs it.
    let d = Serve::start(&p, &[("TUNA_CLOCK_OFFSET_S", "86400")]);
    let mut run = String::new();
    wait_until(
        Duration::from_secs(60),
        "the missed fire to start a run",
        || {
            let runs = d.get_json("/api/v1/runs?workflow=nightly-leaderboard");
            runs.as_array()
                .unwrap()
                .first()
                .map(|r| run = r["id"].as_str().unwrap().to_string())
                .is_some()
        },
    );
    wait_until(Duration::from_secs(1200), "the nightly run to end", || {
        d.run_status(&run) != "running"
    });
    let st = statuses(&d, &run);
    assert!(st.values().all(|s| s == "passed"), "{st:?}");
    wait_until(Duration::from_secs(30), "leaderboard rows", || {
        d.get_json("/api/v1/leaderboard")["entries"]
            .as_array()
            .unwrap()
            .len()
            == 9
    });
}
