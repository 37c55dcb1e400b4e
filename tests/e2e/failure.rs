//! Failures: retries with backoff, timeouts that kill the whole process group, a failed step
//! skipping its dependents while independent branches run on, missing outputs, gates.

use std::time::Duration;

use tuna_tests::{Project, alive, wait_until};

#[test]
fn retry_until_success() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"
name: retry
steps:
  flaky:
    run: |
      n=$(cat "$TUNA_PROJECT_DIR/tries" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$TUNA_PROJECT_DIR/tries"
      echo "attempt $TUNA_ATTEMPT"
      [ "$n" -ge 3 ]
    retry: { attempts: 3, backoff: 1s }
"#,
    );
    let r = p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(p.read("tries").trim(), "3");
    let st = p.status(&r.run_id());
    assert_eq!(st["steps"][0]["status"], "passed");
    assert_eq!(st["steps"][0]["attempt"], 3);
    let log = p.run(&["logs", &r.run_id(), "flaky"]).ok();
    assert_eq!(log.stdout.trim(), "attempt 3");
    let first = p
        .run(&["logs", &r.run_id(), "flaky", "--attempt", "1"])
        .ok();
    assert_eq!(first.stdout.trim(), "attempt 1");
    // backoff 1s then 2s between the three attempts
    assert!(
        st["steps"][0]["duration_s"].as_f64().unwrap() >= 3.0,
        "{st}"
    );
}

#[test]
fn retries_exhausted_fail_the_run_and_skip_dependents_only() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"
name: branches
steps:
  bad:
    run: echo boom >&2; exit 7
    retry: { attempts: 2, backoff: 0s }
  after-bad:
    needs: [bad]
    run: touch "$TUNA_PROJECT_DIR/after-bad-ran"
  good:
    run: touch "$TUNA_PROJECT_DIR/good-ran"
  after-good:
    needs: [good]
    run: touch "$TUNA_PROJECT_DIR/after-good-ran"
"#,
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "a failed run exits 1: {}", r.stderr);
    let id = r.run_id();
    assert_eq!(p.step_status(&id, "bad"), "failed");
    assert_eq!(p.step_status(&id, "after-bad"), "skipped");
    assert_eq!(p.step_status(&id, "good"), "passed");
    assert_eq!(p.step_status(&id, "after-good"), "passed");
    assert!(!p.path("after-bad-ran").exists());
    let st = p.status(&id);
    let bad = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "bad")
        .unwrap();
    assert_eq!(bad["attempt"], 2);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 7"),
        "{bad}"
    );
    let err = p.run(&["logs", &id, "bad", "--stderr"]).ok();
    assert_eq!(err.stdout.trim(), "boom");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"
name: slow
steps:
  slow:
    run: |
      sleep 300 &
      echo $! > "$TUNA_PROJECT_DIR/grandchild.pid"
      wait
    timeout: 1s
"#,
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(p.step_status(&r.run_id(), "slow"), "timed-out");
    let pid: i32 = p.read("grandchild.pid").trim().parse().expect("pid");
    wait_until(
        Duration::from_secs(10),
        "the grandchild to be killed",
        || !alive(pid),
    );
}

#[test]
fn missing_declared_output_fails_with_its_name() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: missing\nsteps:\n  s:\n    run: echo hi > other.txt\n    outputs: [model.bin]\n",
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1);
    let st = p.status(&r.run_id());
    let msg = st["steps"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("declared output `model.bin` was not produced"),
        "{msg}"
    );
}

#[test]
fn metrics_are_recorded_and_gates_enforced() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"
name: gates
steps:
  train:
    run: |
      echo '{"loss_first": 2.5, "loss_last": 1.25, "note": "text is ignored"}' > "$TUNA_METRICS"
    gate: ["loss_last < loss_first"]
  diverge:
    run: |
      echo '{"loss_first": 1.0, "loss_last": 3.0}' > "$TUNA_METRICS"
    gate: ["loss_last < loss_first"]
"#,
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let st = p.status(&r.run_id());
    let steps = st["steps"].as_array().unwrap();
    let train = steps.iter().find(|s| s["name"] == "train").unwrap();
    assert_eq!(train["status"], "passed");
    assert_eq!(train["metrics"]["loss_last"], 1.25);
    let diverge = steps.iter().find(|s| s["name"] == "diverge").unwrap();
    assert_eq!(diverge["status"], "failed");
    assert!(
        diverge["message"]
            .as_str()
            .unwrap()
            .contains("gate `loss_last < loss_first` failed"),
        "{diverge}"
    );
}

#[test]
fn unknown_param_and_missing_input_refuse_to_start() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: pre\nparams:\n  lr: 1e-4\nsteps:\n  s:\n    run: touch \"$TUNA_PROJECT_DIR/ran\"\n    inputs: [data.txt]\n",
    );
    let r = p.run(&["run", "wf.yaml", "-p", "lrr=1"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("param `lrr` is not declared"),
        "{}",
        r.stderr
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("input `data.txt` does not exist"),
        "{}",
        r.stderr
    );
    assert!(!p.path("ran").exists(), "nothing ran");
}

#[test]
fn a_missing_program_exits_127_like_bash() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: nf\nsteps:\n  s:\n    run: no-such-program-tuna --flag\n",
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1);
    let st = p.status(&r.run_id());
    assert!(
        st["steps"][0]["message"]
            .as_str()
            .unwrap()
            .contains("exited with code 127"),
        "{st}"
    );
    let err = p.run(&["logs", &r.run_id(), "s", "--stderr"]).ok();
    assert!(
        err.stdout
            .contains("no-such-program-tuna: command not found"),
        "{}",
        err.stdout
    );
}
