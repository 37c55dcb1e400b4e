//! The daemon and the Ray runner: `tuna serve` killed with SIGKILL while a step of a submitted
//! run runs as a Ray Job; the next `tuna serve` resumes the run and re-attaches to the job
//! (no second job, the command runs once) and the run completes.

use std::time::Duration;

use tuna_tests::{Project, ray, wait_until};

use super::daemon_harness::Serve;
use super::ray::{inventory, jobs_of, shared_dir, step};

#[test]
fn a_daemon_killed_mid_ray_job_reattaches_to_it_after_its_restart() {
    let c = ray::cluster();
    let shared = shared_dir();
    let p = Project::new();
    inventory(&p, shared.path(), "");
    let (count, gate) = (p.path("count"), p.path("gate"));
    p.file(
        "wf.yaml",
        &tuna_tests::ray::gated_workflow("adopt-daemon", &count, &gate),
    );
    let runners = p.path("runners.yaml");
    let env = [
        ("TUNA_RUNNERS", runners.to_str().unwrap()),
        ("TUNA_TEST_RAY_TOKEN", c.token.as_str()),
        ("TUNA_RAY_POLL_MS", "200"),
    ];
    let d = Serve::start(&p, &env);
    let id = d.tuna(&p, &["submit", "wf.yaml"]).ok().run_id();
    wait_until(Duration::from_secs(60), "the Ray step to start", || {
        p.read("count") == "ran\n" && p.step_status(&id, "train") == "running"
    });
    assert_eq!(jobs_of(c, &id, "train").len(), 1);
    d.kill(); // SIGKILL: no chance to clean up

    // The job goes on without the daemon; the next daemon finds the run and watches it again.
    let d = Serve::start(&p, &env);
    std::fs::write(&gate, "").unwrap();
    wait_until(Duration::from_secs(120), "the run to end", || {
        ["passed", "failed", "cancelled"].contains(&d.run_status(&id).as_str())
    });
    assert_eq!(d.run_status(&id), "passed", "{}", p.status(&id));
    assert_eq!(p.read("count"), "ran\n", "the command ran again");
    let jobs = jobs_of(c, &id, "train");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].1, "SUCCEEDED");
    let status = p.status(&id);
    assert_eq!(step(&status, "train")["attempt"], 1, "{status}");
    assert_eq!(step(&status, "train")["runner"], "ray", "{status}");
    let logs = d.tuna(&p, &["logs", &id, "eval"]).ok();
    assert_eq!(logs.stdout.trim(), "result");
    d.kill();
}
