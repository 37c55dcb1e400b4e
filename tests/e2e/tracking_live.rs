//! Live experiment tracking against a real MLflow server: the parent MLflow run is RUNNING
//! while the tuna run runs and each step's run is there as soon as the step ends; a run killed
//! with -9 stays RUNNING until `tuna resume` ends it; what could not be sent while the server
//! was down is kept in the store and sent by `tuna track sync RUN` or the next `tuna run`, once,
//! with no metric point twice.

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use tuna_tests::mlflow::{Mlflow, run_id, status, tag};
use tuna_tests::{Project, Run, wait_until};

const LIMIT: Duration = Duration::from_secs(60);

/// `first` logs a metric and a 1500-point loss history; `hold` waits for the file `go` in the
/// project (a condition, polled); `last` runs after it.
fn workflow(p: &Project, name: &str) -> String {
    format!(
        r#"name: {name}
steps:
  first:
    run: |
      printf '{{"acc": 0.5}}' > "$TUNA_METRICS"
      awk 'BEGIN {{ printf "{{\"losses\": ["; for (i = 0; i < 1500; i++) printf "%s%d", (i ? "," : ""), i; printf "]}}" }}' > "$TUNA_OUTPUTS/finetune.json"
    outputs: [finetune.json]
  hold:
    needs: [first]
    run: |
      while [ ! -f {go} ]; do sleep 0.1; done
  last:
    needs: [hold]
    run: |
      printf '{{"score": 1.0}}' > "$TUNA_METRICS"
"#,
        go = p.path("go").display()
    )
}

fn spawn(p: &Project, uri: &str, exp: &str, args: &[&str]) -> (Child, String) {
    use std::io::BufRead;
    let mut c = p
        .tuna()
        .env("MLFLOW_TRACKING_URI", uri)
        .env("MLFLOW_EXPERIMENT_NAME", exp)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tuna");
    let mut id = String::new();
    std::io::BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut id)
        .unwrap();
    (c, id.trim().to_string())
}

fn tracked(p: &Project, uri: &str, exp: &str, args: &[&str]) -> Run {
    let out = p
        .tuna()
        .env("MLFLOW_TRACKING_URI", uri)
        .env("MLFLOW_EXPERIMENT_NAME", exp)
        .args(args)
        .output()
        .expect("run tuna");
    Run::from(out)
}

/// The parent runs and the step runs (by step name) of an experiment.
fn split(m: &Mlflow, exp: &str) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut parents = Vec::new();
    let mut children = Vec::new();
    for r in m.runs(exp) {
        match tag(&r, "tuna.step") {
            Some(s) => children.push((s.to_string(), r)),
            None => parents.push(r),
        }
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    (parents, children)
}

fn child<'a>(children: &'a [(String, Value)], step: &str) -> Option<&'a Value> {
    children.iter().find(|(s, _)| s == step).map(|(_, r)| r)
}

/// Starts workflow `name` in a new project and waits until `first`'s run is in MLflow, sent
/// whole (its `tuna.logged` tag goes last): the project, the running tuna and the run's id.
fn run_to_hold(m: &Mlflow, name: &str, exp: &str) -> (Project, Child, String) {
    let p = Project::new();
    p.file("wf.yaml", &workflow(&p, name));
    let (tuna, id) = spawn(&p, &m.uri(), exp, &["run", "wf.yaml"]);
    wait_until(LIMIT, "first's run in MLflow", || {
        let (_, children) = split(m, exp);
        child(&children, "first").is_some_and(|c| tag(c, "tuna.logged").is_some())
    });
    (p, tuna, id)
}

/// Every step's run is there, FINISHED, with each metric point once.
fn assert_complete(m: &Mlflow, exp: &str, id: &str) {
    let (parents, children) = split(m, exp);
    assert_eq!(parents.len(), 1, "one parent: {parents:?}");
    assert_eq!(tag(&parents[0], "tuna.run_id"), Some(id));
    assert_eq!(status(&parents[0]), "FINISHED");
    let names: Vec<&str> = children.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["first", "hold", "last"]);
    for (_, c) in &children {
        assert_eq!(status(c), "FINISHED", "{c}");
    }
    let first = run_id(child(&children, "first").unwrap());
    let loss = m.history(first, "loss");
    assert_eq!(loss.len(), 1500, "each point once");
    assert_eq!(loss[1499], (1499, 1499.0));
    assert_eq!(m.history(first, "acc").len(), 1);
    assert_eq!(
        m.history(run_id(child(&children, "last").unwrap()), "score"),
        [(1, 1.0)]
    );
}

#[test]
fn the_parent_is_running_while_the_run_runs_and_a_killed_run_stays_running_until_resumed() {
    let m = Mlflow::shared();
    let exp = "tuna-e2e-live";
    // While `hold` waits: the parent is RUNNING and `first`'s run is there, whole.
    let (p, mut tuna, id) = run_to_hold(m, "track-live", exp);
    let (parents, children) = split(m, exp);
    assert_eq!(parents.len(), 1);
    assert_eq!(status(&parents[0]), "RUNNING");
    assert_eq!(children.len(), 1, "only the step that ended: {children:?}");
    let first = child(&children, "first").unwrap();
    assert_eq!(status(first), "FINISHED");
    assert_eq!(m.history(run_id(first), "loss").len(), 1500);

    // Killed: nothing tells MLflow, so the parent stays RUNNING.
    tuna.kill().unwrap();
    tuna.wait().unwrap();
    let (parents, _) = split(m, exp);
    assert_eq!(status(&parents[0]), "RUNNING");

    p.file("go", "");
    let r = tracked(&p, &m.uri(), exp, &["resume", &id]).ok();
    assert!(r.stderr.contains("tracking: run"), "{}", r.stderr);
    assert_complete(m, exp, &id);
}

#[test]
fn the_server_stopped_during_a_run_then_track_sync_sends_what_it_lacks_once() {
    let m = Mlflow::start();
    let exp = "tuna-e2e-sync";
    let (p, tuna, id) = run_to_hold(&m, "track-sync", exp);
    m.stop();
    p.file("go", "");
    let out = tuna.wait_with_output().unwrap();
    let r = Run {
        stdout: id.clone(),
        ..Run::from(out)
    }
    .ok();
    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("MLflow")).collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(warnings[0].starts_with("warning: "), "{}", warnings[0]);
    assert!(
        warnings[0].contains(&format!("tuna track sync {id}")),
        "{}",
        warnings[0]
    );
    assert_eq!(p.step_status(&id, "last"), "passed");

    // Down still: the sync fails, says why, and keeps the run pending.
    let r = tracked(&p, &m.uri(), exp, &["track", "sync", &id]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);

    m.restart();
    let r = tracked(&p, &m.uri(), exp, &["track", "sync", &id]).ok();
    assert!(r.stdout.contains("steps sent: 2"), "{}", r.stdout);
    assert_complete(&m, exp, &id);
    // Sent: nothing is pending any more, and a second sync sends nothing.
    let r = tracked(&p, &m.uri(), exp, &["track", "sync"]).ok();
    assert!(r.stderr.contains("no run is waiting"), "{}", r.stderr);
    let r = tracked(&p, &m.uri(), exp, &["track", "sync", &id]).ok();
    assert!(r.stdout.contains("steps sent: 0"), "{}", r.stdout);
    assert_complete(&m, exp, &id);
}

#[test]
fn a_run_the_server_missed_is_sent_by_the_next_tuna_run() {
    let m = Mlflow::shared();
    let closed = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let down = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let p = Project::new();
    p.file("go", "");
    p.file("wf.yaml", &workflow(&p, "track-later"));
    let exp = "tuna-e2e-later";
    let missed = tracked(&p, &down, exp, &["run", "wf.yaml"]).ok().run_id();
    assert!(m.experiment(exp).is_none());
    p.file(
        "other.yaml",
        "name: track-later-2\nsteps:\n  a:\n    run: echo a\n",
    );
    let r = tracked(&p, &m.uri(), exp, &["run", "other.yaml"]).ok();
    assert!(
        r.stderr.contains(&format!("run {missed} in MLflow"))
            && r.stderr.contains("kept from before"),
        "{}",
        r.stderr
    );
    let (parents, _) = split(m, exp);
    assert_eq!(parents.len(), 2, "{parents:?}");
    let missed_parent: Vec<&Value> = parents
        .iter()
        .filter(|r| tag(r, "tuna.run_id") == Some(missed.as_str()))
        .collect();
    assert_eq!(missed_parent.len(), 1);
    assert_eq!(status(missed_parent[0]), "FINISHED");
    let r = tracked(&p, &m.uri(), exp, &["track", "sync"]).ok();
    assert!(r.stderr.contains("no run is waiting"), "{}", r.stderr);
}
