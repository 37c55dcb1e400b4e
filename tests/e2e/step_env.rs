//! What environment a step gets: under `tuna serve` a clean one (an allowlist, plus what
//! `--pass-env` names), never the daemon's API tokens; under `tuna run` the user's, less
//! tuna's own control variables and secrets.

use std::time::Duration;

use tuna_tests::{Project, wait_until};

use crate::daemon_harness::{Serve, TOKEN};

fn env_workflow(p: &Project, out: &str) {
    p.file(
        "wf.yaml",
        &format!(
            "name: env\nsteps:\n  dump:\n    run: env > {}\n",
            p.path(out).display()
        ),
    );
}

#[test]
fn daemon_steps_never_see_the_daemons_tokens() {
    let p = Project::new();
    env_workflow(&p, "daemon-env.txt");
    let d = Serve::start_with(
        &p,
        &[
            ("AWS_SECRET_ACCESS_KEY", "not-for-steps"),
            ("WANDB_API_KEY", "passed-on"),
            ("TUNA_SSH_PASSPHRASE", "hunter2"),
        ],
        &["--pass-env", "WANDB_*"],
    );
    let id = d.tuna(&p, &["submit", "wf.yaml"]).ok().run_id();
    wait_until(Duration::from_secs(60), "the run to pass", || {
        d.run_status(&id) == "passed"
    });
    let env = p.read("daemon-env.txt");
    for secret in [
        TOKEN,
        "not-for-steps",
        "hunter2",
        "TUNA_SERVE_TOKENS",
        "TUNA_HOME=",
    ] {
        assert!(!env.contains(secret), "`{secret}` reached the step:\n{env}");
    }
    assert!(env.contains("WANDB_API_KEY=passed-on"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    // tuna's own variables for the step are there.
    assert!(env.contains(&format!("TUNA_RUN_ID={id}")), "{env}");
}

#[test]
fn a_local_run_passes_the_users_variables_but_not_tunas_secrets() {
    let p = Project::new();
    env_workflow(&p, "run-env.txt");
    p.tuna()
        .args(["run", "wf.yaml"])
        .env("MY_SETTING", "kept")
        .env("TUNA_SSH_PASSPHRASE", "hunter2")
        .env("TUNA_SERVE_TOKENS", "tok-abc")
        .status()
        .unwrap();
    let env = p.read("run-env.txt");
    assert!(env.contains("MY_SETTING=kept"), "{env}");
    for secret in ["hunter2", "tok-abc", "TUNA_HOME="] {
        assert!(!env.contains(secret), "`{secret}` reached the step:\n{env}");
    }
    assert!(
        env.contains("TUNA_HELM_RUN="),
        "a step setting passes: {env}"
    );
}
