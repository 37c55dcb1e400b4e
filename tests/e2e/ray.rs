//! The Ray runner end to end: one real Ray head (tests/src/ray.rs) for the whole test process,
//! and the real `tuna` binary submitting, watching, cancelling and checking Ray Jobs there.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use tuna_tests::ray::{self, RayCluster};
use tuna_tests::{Project, Run, wait_exit, wait_until};

/// A token the test cluster refuses.
const WRONG_TOKEN: &str = "wrong-9f2c-token";

/// runners.yaml: a local runner and `ray` on the test cluster (2 × a100), plus `extra`.
pub(crate) fn inventory(p: &Project, shared: &Path, extra: &str) {
    let c = ray::cluster();
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n  local: {{ type: local, slots: 2 }}\n  ray:\n    type: ray\n    \
             address: {addr}\n    token_env: TUNA_TEST_RAY_TOKEN\n    max_parallel: 2\n    \
             gpus: [{{ type: a100, count: 2 }}]\n    price_per_hour: 1.5\n    \
             artifacts: {{ shared: {shared} }}\n{extra}",
            addr = c.address(),
            shared = shared.display(),
        ),
    );
}

/// `tuna --runners runners.yaml ARGS…` with the token's variable set and quick polls.
fn command(p: &Project, args: &[&str]) -> std::process::Command {
    let mut c = p.tuna();
    c.args(["--runners", "runners.yaml"])
        .args(args)
        .env("TUNA_TEST_RAY_TOKEN", &ray::cluster().token)
        .env("TUNA_TEST_WRONG_TOKEN", WRONG_TOKEN)
        .env("TUNA_RAY_POLL_MS", "200");
    c
}

fn tuna(p: &Project, args: &[&str]) -> Run {
    Run::from(command(p, args).output().expect("run tuna"))
}

/// Starts `tuna ARGS…`; the child and the first line it prints (the run id).
fn spawn(p: &Project, args: &[&str]) -> (Child, String) {
    tuna_tests::spawn_for_id(command(p, args))
}

pub(crate) fn step<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {status}"))
}

/// The Ray jobs tuna submitted for `(run, step)`: (submission id, status).
pub(crate) fn jobs_of(c: &RayCluster, run: &str, step: &str) -> Vec<(String, String)> {
    c.jobs_of(run, step)
}

/// The pid of the script of `step`'s first attempt, which writes it to `pid` first thing.
fn script_pid(shared: &Path, run: &str, step: &str) -> i32 {
    let file = shared.join(format!("runs/{run}/{step}/1/pid"));
    wait_until(Duration::from_secs(60), "the job's script to start", || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.ends_with('\n'))
    });
    std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The one Ray job of `(run, step)` ends STOPPED and its script `pid` is gone.
fn assert_stopped(c: &RayCluster, run: &str, step: &str, pid: i32) {
    let jobs = jobs_of(c, run, step);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    wait_until(Duration::from_secs(30), "the Ray job to be STOPPED", || {
        c.job_status(&jobs[0].0).as_deref() == Some("STOPPED")
    });
    wait_until(Duration::from_secs(30), "the script to be gone", || {
        !tuna_tests::alive(pid)
    });
}

/// The cluster, a shared folder and a project with the usual runners.yaml and `workflow` as
/// wf.yaml.
fn project(workflow: &str) -> (&'static RayCluster, tempfile::TempDir, Project) {
    let shared = shared_dir();
    let p = Project::new();
    inventory(&p, shared.path(), "");
    p.file("wf.yaml", workflow);
    (ray::cluster(), shared, p)
}

/// A project whose runners.yaml has `local` and `ray` declaring the GPUs `gpus` (which the
/// cluster need not have).
fn ray_declaring(gpus: &str) -> (&'static RayCluster, tempfile::TempDir, Project) {
    let c = ray::cluster();
    let shared = shared_dir();
    let p = Project::new();
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n  local: {{ type: local, slots: 2 }}\n  ray:\n    type: ray\n    \
             address: {}\n    token_env: TUNA_TEST_RAY_TOKEN\n    max_parallel: 2\n    \
             gpus: [{gpus}]\n    artifacts: {{ shared: {} }}\n",
            c.address(),
            shared.path().display()
        ),
    );
    (c, shared, p)
}

/// A project whose runners.yaml declares an h100 on the Ray runner (the cluster has none) and
/// whose workflow asks for one.
fn wants_h100() -> (&'static RayCluster, tempfile::TempDir, Project) {
    let (c, shared, p) = ray_declaring("{ type: h100, count: 1 }");
    p.file(
        "wf.yaml",
        "name: wants-h100\nsteps:\n  train:\n    runs-on: { gpu: h100 }\n    run: echo never\n",
    );
    (c, shared, p)
}

/// Held by the tests whose jobs take the cluster's GPUs, one at a time: a job that waits for
/// a GPU longer than the test cluster's start timeout (20 s) is failed by Ray.
fn gpus() -> std::sync::MutexGuard<'static, ()> {
    static GPUS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GPUS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port on 127.0.0.1 nobody listens on (bound, then let go).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn shared_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tuna-ray-shared-")
        .tempdir()
        .unwrap()
}

#[test]
fn ray_cluster_answers_on_loopback() {
    let c = ray::cluster();
    let (code, body) = c.get("/api/version");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(
        v["ray_version"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
}

#[test]
fn a_middle_step_runs_as_a_ray_job_and_passes_files_both_ways() {
    let (c, shared, p) = project(
        r#"
name: ray-files
steps:
  prep:
    run: printf 'b\na\nb\n' > raw.txt
    outputs: [raw.txt]
  train:
    runs-on: ray
    inputs: [data.txt]
    env:
      GREETING: hello-ray
    run: |
      sort -u ${{ steps.prep.outputs.raw.txt }} > model.txt
      cat data.txt >> model.txt
      mkdir -p ckpt/empty && echo w > ckpt/weights.bin
      env > "$TUNA_ATTEMPT_DIR/env.txt"
      echo '{"loss": 0.25}' > "$TUNA_METRICS"
      echo "trained on ray: $GREETING"
    outputs: [model.txt, ckpt/]
  report:
    run: |
      wc -l < ${{ steps.train.outputs.model.txt }} > lines.txt
      ls ${{ steps.train.outputs.ckpt }} > ckpt.txt
    outputs: [lines.txt, ckpt.txt]
"#,
    );
    p.file("data.txt", "from-the-project\n");
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let status = p.status(&id);
    assert_eq!(step(&status, "train")["runner"], "ray", "{status}");
    assert_eq!(step(&status, "prep")["runner"], "local");
    // One Ray job for the attempt, under the deterministic id, and it succeeded.
    let jobs = jobs_of(c, &id, "train");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(
        jobs[0].0.starts_with(&format!("tuna-{id}-train-1-")),
        "{jobs:?}"
    );
    assert_eq!(jobs[0].1, "SUCCEEDED");
    // The declared outputs came back into the local attempt folder, and downstream used them.
    let work = p.home().join(format!("runs/{id}/train/1/work"));
    assert_eq!(
        std::fs::read_to_string(work.join("model.txt")).unwrap(),
        "a\nb\nfrom-the-project\n"
    );
    assert!(work.join("ckpt/empty").is_dir());
    let report = p.home().join(format!("runs/{id}/report/1/work"));
    assert_eq!(
        std::fs::read_to_string(report.join("lines.txt"))
            .unwrap()
            .trim(),
        "3"
    );
    assert_eq!(
        std::fs::read_to_string(report.join("ckpt.txt")).unwrap(),
        "empty\nweights.bin\n"
    );
    // The job ran in the shared folder with the job's env, and nothing of tuna's own.
    let remote = shared.path().join(format!("runs/{id}/train/1"));
    let env = std::fs::read_to_string(remote.join("env.txt")).unwrap();
    assert!(env.contains("GREETING=hello-ray"), "{env}");
    assert!(env.contains(&format!("TUNA_RUN_ID={id}")), "{env}");
    assert!(
        env.contains(&format!("TUNA_OUTPUTS={}", remote.join("work").display())),
        "{env}"
    );
    // tuna gives the job no token: not in what it sent, not under its variable's name.
    let (_, body) = c.get(&format!("/api/jobs/{}", jobs[0].0));
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    let vars = sent["runtime_env"]["env_vars"].as_object().unwrap();
    assert!(vars.contains_key("GREETING"), "{body}");
    assert!(
        vars.values().all(|v| v != c.token.as_str()),
        "the token was sent: {body}"
    );
    assert!(!env.contains("TUNA_TEST_RAY_TOKEN"), "{env}");
    // Metrics and live logs came back.
    let metrics =
        std::fs::read_to_string(p.home().join(format!("runs/{id}/train/1/metrics.json"))).unwrap();
    assert!(metrics.contains("0.25"), "{metrics}");
    let logs = tuna(&p, &["logs", &id, "train"]).ok();
    assert!(
        logs.stdout.contains("trained on ray: hello-ray"),
        "{}",
        logs.stdout
    );
    // Run again: all cache hits, no new Ray job.
    let again = tuna(&p, &["run", "wf.yaml"]).ok();
    let statuses = p.step_statuses(&again.run_id());
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
    assert!(jobs_of(c, &again.run_id(), "train").is_empty());
}

#[test]
fn runners_check_reports_the_cluster_and_each_bad_setting_clearly() {
    ray::cluster();
    let shared = shared_dir();
    let p = Project::new();
    let closed = closed_port();
    inventory(
        &p,
        shared.path(),
        &format!(
            "  ray-down:\n    type: ray\n    address: http://127.0.0.1:{closed}\n    \
             artifacts: {{ shared: {s} }}\n  ray-h100:\n    type: ray\n    address: {a}\n    \
             token_env: TUNA_TEST_RAY_TOKEN\n    gpus: [{{ type: h100, count: 1 }}]\n    \
             artifacts: {{ shared: {s} }}\n  ray-badtoken:\n    type: ray\n    address: {a}\n    \
             token_env: TUNA_TEST_WRONG_TOKEN\n    artifacts: {{ shared: {s} }}\n  \
             ray-notoken:\n    type: ray\n    address: {a}\n    artifacts: {{ shared: {s} }}\n",
            s = shared.path().display(),
            a = ray::cluster().address(),
        ),
    );
    let check = tuna(&p, &["runners", "check"]);
    assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
    let out = &check.stdout;
    let block = |name: &str| -> String {
        let start = out
            .find(&format!("{name} "))
            .unwrap_or_else(|| panic!("{name}: {out}"));
        out[start..].lines().take(2).collect::<Vec<_>>().join("\n")
    };
    let good = block("ray ");
    assert!(good.contains("reachable"), "{good}");
    assert!(good.contains("Ray 2."), "{good}");
    assert!(good.contains("1 node(s) alive"), "{good}");
    // Other tests' jobs may hold GPUs meanwhile: free is some whole number of the 2.
    assert!(
        ["GPU 0/2 free", "GPU 1/2 free", "GPU 2/2 free"]
            .iter()
            .any(|g| good.contains(g)),
        "{good}"
    );
    assert!(good.contains("GPU type `a100`: 2"), "{good}");
    let down = block("ray-down");
    assert!(down.contains("unreachable"), "{down}");
    assert!(
        down.contains(&format!(
            "runner `ray-down`: the Ray dashboard at http://127.0.0.1:{closed} is unreachable"
        )),
        "{down}"
    );
    let h100 = block("ray-h100");
    assert!(h100.contains("broken"), "{h100}");
    assert!(
        h100.contains("GPU type `h100` declared in runners.yaml is not on the cluster"),
        "{h100}"
    );
    let bad = block("ray-badtoken");
    assert!(bad.contains("auth failed"), "{bad}");
    assert!(
        bad.contains("runner `ray-badtoken`: the Ray cluster at")
            && bad.contains("refused the token from $TUNA_TEST_WRONG_TOKEN (HTTP 403)"),
        "{bad}"
    );
    let none = block("ray-notoken");
    assert!(none.contains("auth failed"), "{none}");
    assert!(
        none.contains("refused the token (no token_env is set) (HTTP 401)"),
        "{none}"
    );
    assert!(!out.contains(&ray::cluster().token) && !out.contains(WRONG_TOKEN));
    // A bad entry is refused naming the runner and the field.
    p.file(
        "bad.yaml",
        "runners:\n  r:\n    type: ray\n    address: 127.0.0.1:8265\n    artifacts: { shared: /x }\n",
    );
    let bad = p.run(&["--runners", "bad.yaml", "runners", "check"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains(
            "runner `r`: address `127.0.0.1:8265` must be the dashboard's http:// or https:// URL"
        ),
        "{}",
        bad.stderr
    );
}

#[test]
fn cancelling_a_running_ray_step_stops_its_job() {
    let _gpus = gpus();
    let (c, shared, p) = project(
        r#"
name: long
steps:
  train:
    runs-on: { gpu: a100, count: 2 }
    run: |
      echo $$ > "$TUNA_ATTEMPT_DIR/pid"
      echo epoch-1
      sleep 300
"#,
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    let pid = script_pid(shared.path(), &id, "train");
    // Its log reaches the local attempt folder while it runs.
    let log = p.home().join(format!("runs/{id}/train/1/stdout.log"));
    wait_until(Duration::from_secs(30), "the live log", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("epoch-1"))
    });
    // `runners check` sees both GPUs in use: the job holds them, so no other test's job can
    // (Ray's report lags a few seconds).
    wait_until(
        Duration::from_secs(30),
        "runners check to count the GPUs in use",
        || {
            tuna(&p, &["runners", "check"])
                .stdout
                .contains("GPU 0/2 free")
        },
    );
    tuna(&p, &["cancel", &id]).ok();
    assert_eq!(wait_exit(&mut child), 130);
    assert_eq!(p.step_status(&id, "train"), "cancelled");
    assert_stopped(c, &id, "train", pid);
}

/// tuna killed after it submitted a Ray job but before the store held the job's handle:
/// `tuna cancel` finds the job by the attempt's submission id and stops it.
#[test]
fn cancel_of_a_run_killed_before_its_ray_handle_was_stored_stops_the_job() {
    let (c, shared, p) = project(
        r#"
name: lost
steps:
  train:
    runs-on: ray
    run: |
      echo $$ > "$TUNA_ATTEMPT_DIR/pid"
      sleep 300
"#,
    );
    let (child, id) = spawn(&p, &["run", "wf.yaml"]);
    let pid = script_pid(shared.path(), &id, "train");
    super::cancel::kill_lose_the_handle_and_cancel(child, &p, &id, "train", |a| tuna(&p, a));
    assert_stopped(c, &id, "train", pid);
    assert_eq!(p.step_status(&id, "train"), "cancelled");
}

#[test]
fn a_ray_step_past_its_timeout_is_stopped_and_timed_out() {
    let (c, shared, p) = project(
        r#"
name: slow
steps:
  slow:
    runs-on: ray
    timeout: 3s
    run: |
      echo $$ > "$TUNA_ATTEMPT_DIR/pid"
      sleep 300
"#,
    );
    let r = tuna(&p, &["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let id = r.run_id();
    assert_eq!(p.step_status(&id, "slow"), "timed-out");
    let pid = script_pid(shared.path(), &id, "slow");
    assert_stopped(c, &id, "slow", pid);
}

#[test]
fn a_gpu_type_the_cluster_lacks_is_refused_at_run_start() {
    let (_c, _shared, p) = wants_h100();
    let r = tuna(&p, &["run", "wf.yaml"]);
    // What the workflow asks is at fault: invalid input (README's exit codes).
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("runner `ray`: the Ray cluster at")
            && r.stderr.contains("has no GPU of type `h100`")
            && r.stderr.contains("accelerator_type:H100"),
        "{}",
        r.stderr
    );
    // Refused before any run was recorded.
    assert!(r.stdout.trim().is_empty(), "{}", r.stdout);
}

#[test]
fn a_gpu_step_gets_its_gpus_from_ray_and_counts_gpu_hours() {
    let _gpus = gpus();
    let (c, _shared, p) = project(
        r#"
name: gpu
steps:
  train:
    runs-on: { gpu: a100, count: 2 }
    run: echo "cuda=$CUDA_VISIBLE_DEVICES" > gpus.txt
    outputs: [gpus.txt]
"#,
    );
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let id = r.run_id();
    assert_eq!(jobs_of(c, &id, "train").len(), 1);
    // Ray gave the job both fake GPUs.
    let work = p.home().join(format!("runs/{id}/train/1/work"));
    let gpus = std::fs::read_to_string(work.join("gpus.txt")).unwrap();
    assert_eq!(
        gpus.trim().trim_start_matches("cuda=").split(',').count(),
        2,
        "{gpus}"
    );
    let status = p.status(&id);
    let train = step(&status, "train");
    assert!(train["gpu_hours"].as_f64().unwrap() > 0.0, "{train}");
    // The ledger counts both GPUs at the runner's price.
    let ratio = train["cost"].as_f64().unwrap() / train["gpu_hours"].as_f64().unwrap();
    assert!((ratio - 1.5).abs() < 1e-6, "{train}");
}

#[test]
fn tuna_killed_mid_ray_job_resumes_by_reattaching_without_a_second_job() {
    let c = ray::cluster();
    let shared = shared_dir();
    let p = Project::new();
    inventory(&p, shared.path(), "");
    let gate = p.path("gate");
    p.file(
        "wf.yaml",
        &tuna_tests::ray::gated_workflow("adopt", &p.path("count"), &gate),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    wait_until(Duration::from_secs(60), "the Ray step to start", || {
        p.read("count") == "ran\n" && p.step_status(&id, "train") == "running"
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    // tuna comes back while the job still runs: it watches the same job again.
    let (mut resumed, rid) = spawn(&p, &["resume", &id]);
    assert_eq!(rid, id);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait_exit(&mut resumed), 0);
    assert_eq!(p.read("count"), "ran\n", "the command ran again");
    let jobs = jobs_of(c, &id, "train");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].1, "SUCCEEDED");
    let status = p.status(&id);
    assert_eq!(step(&status, "train")["attempt"], 1);
    assert_eq!(step(&status, "eval")["status"], "passed");
    let logs = tuna(&p, &["logs", &id, "eval"]).ok();
    assert_eq!(logs.stdout.trim(), "result");
    // The log was copied once, across both tuna processes.
    let train = tuna(&p, &["logs", &id, "train"]).ok();
    assert_eq!(
        train.stdout.matches("epoch-1").count(),
        1,
        "{}",
        train.stdout
    );
    assert!(train.stdout.contains("epoch-2"), "{}", train.stdout);
}

#[test]
fn a_job_pending_past_wait_for_capacity_is_stopped_and_the_step_falls_back() {
    // runners.yaml promises more A100s than the cluster has: Ray keeps the job PENDING.
    let (c, shared, p) = ray_declaring("{ type: a100, count: 4 }");
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: capacity
steps:
  train:
    runs-on: [{{ gpu: a100, count: 3 }}, local]
    wait_for_capacity: 2s
    retry: {{ attempts: 2, backoff: 0s, on: [capacity] }}
    run: |
      echo "$TUNA_ATTEMPT" >> {ran}
      echo done > out.txt
    outputs: [out.txt]
"#,
            ran = p.path("ran").display()
        ),
    );
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let status = p.status(&id);
    let train = step(&status, "train");
    assert_eq!(train["status"], "passed", "{status}");
    assert_eq!(train["runner"], "local", "{status}");
    assert_eq!(train["attempt"], 2, "{status}");
    // Only the second attempt, on the local runner, ran the command.
    assert_eq!(p.read("ran"), "2\n");
    let note =
        std::fs::read_to_string(p.home().join(format!("runs/{id}/train/1/stderr.log"))).unwrap();
    assert!(
        note.contains("longer than wait_for_capacity (2s); it was stopped"),
        "{note}"
    );
    // The Ray job of the first attempt was given up and never ran. Ray keeps a job that waits
    // for resources PENDING even after a stop, until its start timeout (20 s here) fails it.
    let jobs = jobs_of(c, &id, "train");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let attempt = shared.path().join(format!("runs/{id}/train/1"));
    assert!(attempt.join("abandoned").exists());
    wait_until(Duration::from_secs(60), "the Ray job to end", || {
        matches!(
            c.job_status(&jobs[0].0).as_deref(),
            Some("STOPPED" | "FAILED")
        )
    });
    assert!(!attempt.join("work/out.txt").exists());
}

#[test]
fn built_in_steps_run_on_ray_through_the_nodes_tuna() {
    let (c, _shared, p) = project(
        r#"
name: kinds-on-ray
steps:
  base:
    uses: model.init
    with:
      corpus: data.jsonl
      vocab_size: 300
      hidden_size: 32
      word_embed_proj_dim: 16
      layers: 1
      heads: 2
      ffn_dim: 64
      max_positions: 128
  prepare:
    runs-on: ray
    uses: data.prepare
    with:
      input: data.jsonl
      tokenizer: ${{ steps.base.outputs.model/ }}
      max_tokens: 256
      dedup_threshold: 0.9
      val_fraction: 0.1
"#,
    );
    let sample = tuna_tests::workspace_root().join("workflows/data/neurips-sample.jsonl");
    p.file("data.jsonl", &std::fs::read_to_string(sample).unwrap());
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let status = p.status(&id);
    assert_eq!(step(&status, "prepare")["runner"], "ray", "{status}");
    assert_eq!(jobs_of(c, &id, "prepare").len(), 1);
    // The `with:` file and the upstream model folder were staged; the outputs came back.
    let work = p.home().join(format!("runs/{id}/prepare/1/work"));
    let train = std::fs::read_to_string(work.join("train.jsonl")).unwrap();
    assert!(train.lines().count() > 1, "{train}");
    let again = tuna(&p, &["run", "wf.yaml"]).ok();
    let statuses = p.step_statuses(&again.run_id());
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
}

#[test]
fn the_neurips_pipeline_sends_its_a100_steps_to_ray_with_only_runners_yaml_changed() {
    let _gpus = gpus();
    tuna_tests::tuna_ml_bin();
    let c = ray::cluster();
    let shared = shared_dir();
    let p = Project::new();
    // workflows/runners-ray.yaml as shipped, pointed at the test cluster and a shared folder.
    let root = tuna_tests::workspace_root();
    let shipped = std::fs::read_to_string(root.join("workflows/runners-ray.yaml")).unwrap();
    assert!(shipped.contains("http://127.0.0.1:8265") && shipped.contains("/mnt/shared/tuna"));
    p.file(
        "runners.yaml",
        &shipped
            .replace("http://127.0.0.1:8265", &c.address())
            .replace("/mnt/shared/tuna", &shared.path().to_string_lossy()),
    );
    let out = p
        .tuna()
        .args(["--runners", "runners.yaml", "run"])
        .arg(root.join("workflows/neurips-qlora.yaml"))
        .env("RAY_TOKEN", &c.token)
        .output()
        .unwrap();
    let r = Run::from(out).ok();
    let id = r.run_id();
    let status = p.status(&id);
    assert_eq!(status["status"], "passed", "{status}");
    for name in ["scale-up", "qlora"] {
        assert_eq!(step(&status, name)["runner"], "ray", "{name}: {status}");
        assert_eq!(jobs_of(c, &id, name).len(), 1, "{name}");
    }
    for name in ["base", "prepare", "smoke", "serve", "sample", "helm-eval"] {
        assert_eq!(step(&status, name)["runner"], "local", "{name}: {status}");
    }
    let qlora = &step(&status, "qlora")["metrics"];
    assert!(
        qlora["loss_last"].as_f64().unwrap() < qlora["loss_first"].as_f64().unwrap(),
        "{qlora}"
    );
}

#[test]
fn a_daemon_refuses_a_submitted_run_asking_for_a_gpu_type_the_cluster_lacks() {
    let (c, _shared, p) = wants_h100();
    let runners = p.path("runners.yaml");
    let d = super::daemon_harness::Serve::start(
        &p,
        &[
            ("TUNA_RUNNERS", runners.to_str().unwrap()),
            ("TUNA_TEST_RAY_TOKEN", &c.token),
        ],
    );
    let r = d.tuna(&p, &["submit", "wf.yaml"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("runner `ray`: the Ray cluster at")
            && r.stderr.contains("has no GPU of type `h100`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_cluster_that_does_not_answer_sends_the_next_attempt_elsewhere() {
    let shared = shared_dir();
    let p = Project::new();
    let closed = closed_port();
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n  local: {{ type: local, slots: 2 }}\n  ray:\n    type: ray\n    \
             address: http://127.0.0.1:{closed}\n    artifacts: {{ shared: {} }}\n",
            shared.path().display()
        ),
    );
    p.file(
        "wf.yaml",
        r#"
name: fallback
steps:
  train:
    runs-on: [ray, local]
    retry: { attempts: 2, backoff: 0s, on: [runner-lost] }
    run: echo "$TUNA_ATTEMPT" > attempt.txt
    outputs: [attempt.txt]
"#,
    );
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let status = p.status(&r.run_id());
    let train = step(&status, "train");
    assert_eq!(train["status"], "passed", "{status}");
    assert_eq!(train["runner"], "local", "{status}");
    assert_eq!(train["attempt"], 2, "{status}");
    assert!(
        r.stderr.contains(&format!(
            "runner `ray`: the Ray dashboard at http://127.0.0.1:{closed} is unreachable"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn a_secret_reaches_a_ray_step_through_a_private_file_never_ray_s_job_details_and_is_masked() {
    const VALUE: &str = "ray-s3cr3t-4711";
    let (c, shared, p) = project(
        r#"
name: raysec
secrets:
  API_KEY: { env: MY_RAY_KEY }
steps:
  use:
    runs-on: ray
    secrets: [API_KEY]
    run: |
      echo "key=$API_KEY"
      echo "err=$API_KEY" >&2
      test "$API_KEY" = "$(cat "$TUNA_PROJECT_DIR/expect")"
      test ! -e "$TUNA_ATTEMPT_DIR/secrets.json"
"#,
    );
    p.file("expect", VALUE);
    let r = Run::from(
        command(&p, &["run", "wf.yaml"])
            .env("MY_RAY_KEY", VALUE)
            .output()
            .unwrap(),
    )
    .ok();
    let id = r.run_id();
    assert_eq!(jobs_of(c, &id, "use").len(), 1);
    // Ray keeps one log per job: both streams of the script are in it, masked.
    let out = tuna(&p, &["logs", &id, "use"]).ok().stdout;
    assert!(out.contains("key=***") && out.contains("err=***"), "{out}");
    // Not in what Ray shows of its jobs (runtime_env, entrypoint, metadata).
    let (code, jobs) = c.get("/api/jobs/");
    assert_eq!(code, 200);
    assert!(!jobs.contains(VALUE), "Ray's job details hold the secret");
    // Not left in the shared folder, nor anywhere in tuna's home.
    let on_disk = tuna_tests::files_under(shared.path())
        .into_iter()
        .chain(tuna_tests::files_under(&p.home()));
    for f in on_disk {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!text.contains(VALUE), "{} holds the secret", f.display());
    }
}

#[test]
fn gc_cleans_the_shared_folder_of_dropped_runs_and_keeps_what_the_kept_run_needs() {
    let (_c, shared, p) = project(
        r#"
name: raygc
params: { fill: a }
steps:
  make:
    runs-on: ray
    run: echo ${{ params.fill }} > out.txt
    outputs: [out.txt]
"#,
    );
    let id1 = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    let id2 = tuna(&p, &["run", "wf.yaml", "-p", "fill=b"]).ok().run_id();
    let runs = shared.path().join("runs");
    assert!(runs.join(&id1).join("make/1").is_dir());
    let blobs_before = std::fs::read_dir(shared.path().join("cas"))
        .unwrap()
        .count();
    assert!(blobs_before >= 2, "{blobs_before} blobs");
    let gc = tuna(&p, &["gc", "--keep", "1", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap();
    let ray = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["runner"] == "ray")
        .unwrap_or_else(|| panic!("no ray in {report}"));
    assert_eq!(ray["state"], "cleaned", "{report}");
    assert_eq!(ray["attempt_dirs_removed"], 1, "{report}");
    assert!(ray["blobs_removed"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        !runs.join(&id1).exists(),
        "the dropped run's folder is still there"
    );
    assert!(runs.join(&id2).join("make/1").is_dir());
    // Every output came back into the local store: the kept run still pulls, and a new run
    // of the dropped variant stages what it needs again.
    tuna(&p, &["pull", &id2, "make", "--to", "pulled"]).ok();
    assert_eq!(p.read("pulled/out.txt"), "b\n");
    let id3 = tuna(&p, &["run", "wf.yaml", "-p", "fill=c"]).ok().run_id();
    assert_eq!(step(&p.status(&id3), "make")["status"], "passed");
}

#[test]
fn a_second_a100_step_waits_pending_behind_a_busy_one_then_runs() {
    let _gpus = gpus();
    // runners.yaml declares 4 A100s, the cluster has 2: tuna submits both steps, and Ray
    // queues the one it cannot place.
    let (c, _shared, p) = ray_declaring("{ type: a100, count: 4 }");
    let gate = p.path("gate");
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: queue
steps:
  one:
    runs-on: {{ gpu: a100, count: 2 }}
    run: |
      echo "$TUNA_STEP" >> {order}
      while [ ! -e {gate} ]; do sleep 0.05; done
  two:
    runs-on: {{ gpu: a100, count: 2 }}
    run: |
      echo "$TUNA_STEP" >> {order}
      while [ ! -e {gate} ]; do sleep 0.05; done
"#,
            order = p.path("order").display(),
            gate = gate.display(),
        ),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    // One job runs, the other is PENDING in Ray and shown as waiting for capacity.
    let mut pending_step = String::new();
    wait_until(
        Duration::from_secs(60),
        "one job running, one pending",
        || {
            let states: Vec<(String, String)> = ["one", "two"]
                .iter()
                .map(|s| {
                    let jobs = jobs_of(c, &id, s);
                    let st = jobs.first().map(|j| j.1.clone()).unwrap_or_default();
                    (s.to_string(), st)
                })
                .collect();
            let running = states.iter().filter(|(_, st)| st == "RUNNING").count();
            match states.iter().find(|(_, st)| st == "PENDING") {
                Some((s, _)) if running == 1 => {
                    pending_step = s.clone();
                    true
                }
                _ => false,
            }
        },
    );
    wait_until(Duration::from_secs(30), "the pending step's note", || {
        tuna(&p, &["logs", &id, &pending_step, "--stderr"])
            .stdout
            .contains("is waiting for resources (PENDING)")
    });
    // Only the running one has started its command (Ray says RUNNING as the node's wrapper
    // starts, a moment before the command writes its line).
    wait_until(
        Duration::from_secs(30),
        "the running step's command",
        || std::fs::read_to_string(p.path("order")).is_ok_and(|t| !t.is_empty()),
    );
    let started = p.read("order");
    assert_eq!(started.lines().count(), 1, "{started}");
    assert_ne!(started.trim(), pending_step);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait_exit(&mut child), 0);
    let order = p.read("order");
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        vec![started.trim(), pending_step.as_str()],
        "the queued step ran after the busy one"
    );
    for s in ["one", "two"] {
        assert_eq!(step(&p.status(&id), s)["status"], "passed");
        assert_eq!(jobs_of(c, &id, s).len(), 1, "one job for {s}");
    }
}

#[test]
fn a_head_that_stops_answering_mid_job_makes_the_step_runner_lost_and_it_runs_elsewhere() {
    let c = ray::cluster();
    // tuna reaches the head through a proxy the test cuts, as if the head went away.
    let proxy = tuna_tests::proxy::Proxy::start(([127, 0, 0, 1], c.dashboard_port).into());
    let shared = shared_dir();
    let p = Project::new();
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n  local: {{ type: local, slots: 2 }}\n  ray:\n    type: ray\n    \
             address: http://127.0.0.1:{port}\n    token_env: TUNA_TEST_RAY_TOKEN\n    \
             lost_after: 2s\n    artifacts: {{ shared: {shared} }}\n",
            port = proxy.port,
            shared = shared.path().display(),
        ),
    );
    let (started, gate) = (p.path("started"), p.path("gate"));
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: lost
steps:
  train:
    runs-on: [ray, local]
    retry: {{ attempts: 3, backoff: 0s, on: [runner-lost] }}
    run: |
      if [ "$TUNA_ATTEMPT" = 1 ]; then
        touch {started}
        while [ ! -e {gate} ]; do sleep 0.05; done
      fi
      echo "$TUNA_ATTEMPT" > attempt.txt
    outputs: [attempt.txt]
"#,
            started = started.display(),
            gate = gate.display(),
        ),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    wait_until(Duration::from_secs(60), "the Ray job to start", || {
        started.exists()
    });
    proxy.cut();
    assert_eq!(wait_exit(&mut child), 0);
    let status = p.status(&id);
    let train = step(&status, "train");
    assert_eq!(train["status"], "passed", "{status}");
    assert_eq!(train["runner"], "local", "{status}");
    // tuna's own progress lines say why the first attempt ended.
    let mut said = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut said).unwrap();
    assert!(
        said.contains("attempt 1") && said.contains("unreachable"),
        "{said}"
    );
    // The job on the cluster was submitted once; let it end.
    std::fs::write(&gate, "").unwrap();
    wait_until(
        Duration::from_secs(60),
        "the orphaned Ray job to end",
        || {
            let jobs = c.jobs_of(&id, "train");
            jobs.len() == 1 && jobs[0].1 == "SUCCEEDED"
        },
    );
}
