//! Experiment tracking against a real MLflow server (tests/src/mlflow.rs): a run becomes one
//! parent MLflow run with a nested run per step, read back through MLflow's own REST API; a
//! resume logs into the same runs without sending a point twice; `--no-tracking` sends nothing;
//! a server that is down costs one warning line and never the run's result.

use std::net::TcpListener;

use serde_json::Value;
use tuna_tests::mlflow::{Mlflow, param, run_id, status, tag};
use tuna_tests::{Project, Run};

/// Two steps: `train` writes metrics and a `finetune.json` with per-iteration lists; `eval`
/// fails until the file `go` exists in the project.
fn workflow(p: &Project, name: &str, extra: &str) -> String {
    let go = p.path("go");
    format!(
        r#"name: {name}
{extra}params:
  lr: "0.001"
  note: hello
steps:
  train:
    run: |
      printf '{{"final_loss": 0.5, "acc": 0.9, "acc@k:5": 0.3}}' > "$TUNA_METRICS"
      printf '{{"losses": [2.0, 1.5, 1.0], "lrs": [0.1, 0.05, 0.01], "steps": 3}}' > "$TUNA_OUTPUTS/finetune.json"
    outputs: [finetune.json]
  eval:
    needs: [train]
    run: |
      test -f {go} || exit 3
      printf '{{"score": 0.75}}' > "$TUNA_METRICS"
"#,
        go = go.display()
    )
}

fn tracked(p: &Project, m: &Mlflow, exp: &str, args: &[&str]) -> Run {
    let out = p
        .tuna()
        .env("MLFLOW_TRACKING_URI", m.uri())
        .env("MLFLOW_EXPERIMENT_NAME", exp)
        .env("MLFLOW_TRACKING_TOKEN", "tok-never-stored-7731")
        .args(args)
        .output()
        .expect("run tuna");
    Run::from(out)
}

/// (parents, children by step name) of an experiment.
fn split(runs: &[Value]) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut parents = Vec::new();
    let mut children = Vec::new();
    for r in runs {
        match tag(r, "tuna.step") {
            Some(s) => children.push((s.to_string(), r.clone())),
            None => parents.push(r.clone()),
        }
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    (parents, children)
}

fn child<'a>(children: &'a [(String, Value)], step: &str) -> &'a Value {
    &children.iter().find(|(s, _)| s == step).expect(step).1
}

#[test]
fn a_run_is_one_parent_with_a_nested_run_per_step_and_a_cache_hit_points_back() {
    let m = Mlflow::shared();
    let p = Project::new();
    p.file("go", "");
    p.file("wf.yaml", &workflow(&p, "track-basic", ""));
    let exp = "tuna-e2e-basic";
    let r = tracked(&p, m, exp, &["run", "wf.yaml", "-p", "note=hi there"]).ok();
    let id = r.run_id();
    assert!(r.stderr.contains("tracking: run"), "{}", r.stderr);
    let (parents, children) = split(&m.runs(exp));
    assert_eq!(parents.len(), 1, "{parents:?}");
    let parent = &parents[0];
    assert_eq!(tag(parent, "tuna.run_id"), Some(id.as_str()));
    assert_eq!(tag(parent, "tuna.workflow"), Some("track-basic"));
    assert_eq!(
        tag(parent, "mlflow.runName"),
        Some(format!("track-basic-{id}").as_str())
    );
    assert_eq!(param(parent, "lr"), Some("0.001"));
    assert_eq!(param(parent, "note"), Some("hi there"));
    assert_eq!(status(parent), "FINISHED");
    let names: Vec<&str> = children.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["eval", "train"]);
    for (_, c) in &children {
        assert_eq!(tag(c, "mlflow.parentRunId"), Some(run_id(parent)));
        assert_eq!(status(c), "FINISHED");
        assert_eq!(tag(c, "tuna.cached"), Some("false"));
        assert_eq!(tag(c, "tuna.runner"), Some("local"));
        assert!(tag(c, "tuna.cache_key").is_some_and(|k| !k.is_empty()));
    }
    let train = run_id(child(&children, "train"));
    assert_eq!(m.history(train, "final_loss"), [(1, 0.5)]);
    assert_eq!(m.history(train, "acc"), [(1, 0.9)]);
    assert_eq!(
        m.history(train, "acc_k_5"),
        [(1, 0.3)],
        "a name MLflow refuses, made safe"
    );
    assert_eq!(m.history(train, "loss"), [(0, 2.0), (1, 1.5), (2, 1.0)]);
    assert_eq!(m.history(train, "lr"), [(0, 0.1), (1, 0.05), (2, 0.01)]);
    assert_eq!(
        m.history(run_id(child(&children, "eval")), "score"),
        [(1, 0.75)]
    );

    // The same workflow again: both steps are cache hits, each pointing at the first run.
    let again = tracked(&p, m, exp, &["run", "wf.yaml", "-p", "note=hi there"]).ok();
    let id2 = again.run_id();
    let runs = m.runs(exp);
    let (parents, _) = split(&runs);
    assert_eq!(parents.len(), 2);
    let second = parents
        .iter()
        .find(|r| tag(r, "tuna.run_id") == Some(id2.as_str()))
        .expect("second parent");
    let hits: Vec<&Value> = runs
        .iter()
        .filter(|r| tag(r, "mlflow.parentRunId") == Some(run_id(second)))
        .collect();
    assert_eq!(hits.len(), 2);
    for h in hits {
        assert_eq!(tag(h, "tuna.cached"), Some("true"), "{h}");
        assert_eq!(tag(h, "tuna.cached_from_run"), Some(id.as_str()));
        assert_eq!(tag(h, "tuna.cached_from_mlflow_run"), Some(run_id(parent)));
    }

    // The token never reaches output, the store, nor MLflow.
    for text in [&r.stdout, &r.stderr, &again.stdout, &again.stderr] {
        assert!(!text.contains("tok-never-stored-7731"));
    }
    assert!(!format!("{runs:?}").contains("tok-never-stored-7731"));
    assert_no_bytes(&p.home(), b"tok-never-stored-7731");
}

fn assert_no_bytes(dir: &std::path::Path, needle: &[u8]) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            assert_no_bytes(&path, needle);
        } else if ft.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "secret in {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_resume_logs_into_the_same_runs_without_sending_a_point_twice() {
    let m = Mlflow::shared();
    let p = Project::new();
    let board = "leaderboard:\n  - step: eval\n    model: m1\n    metrics: [score]\n";
    p.file("wf.yaml", &workflow(&p, "track-resume", board));
    let exp = "tuna-e2e-resume";
    let r = tracked(&p, m, exp, &["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "eval fails without `go`: {}", r.stderr);
    let id = r.run_id();
    let (parents, children) = split(&m.runs(exp));
    assert_eq!(parents.len(), 1);
    assert_eq!(status(&parents[0]), "FAILED");
    assert_eq!(status(child(&children, "eval")), "FAILED");
    assert_eq!(tag(child(&children, "eval"), "tuna.status"), Some("failed"));
    assert_eq!(status(child(&children, "train")), "FINISHED");

    assert!(r.stderr.contains("steps sent: 2"), "{}", r.stderr);
    p.file("go", "");
    let r = tracked(&p, m, exp, &["resume", &id]).ok();
    // Only `eval` changed; `train` was sent for its attempt already.
    assert!(r.stderr.contains("steps sent: 1"), "{}", r.stderr);
    let (parents, children) = split(&m.runs(exp));
    assert_eq!(parents.len(), 1, "one parent after the resume: {parents:?}");
    assert_eq!(status(&parents[0]), "FINISHED");
    assert_eq!(children.len(), 2, "one nested run per step: {children:?}");
    let train = run_id(child(&children, "train"));
    assert_eq!(m.history(train, "loss"), [(0, 2.0), (1, 1.5), (2, 1.0)]);
    assert_eq!(m.history(train, "final_loss"), [(1, 0.5)]);
    let eval = child(&children, "eval");
    assert_eq!(status(eval), "FINISHED");
    assert_eq!(m.history(run_id(eval), "score").len(), 1);
    // The failed attempt and the one that passed are both on the step's run.
    assert_eq!(tag(eval, "tuna.attempt.1.outcome"), Some("exited 3"));
    assert_eq!(tag(eval, "tuna.attempt.2.outcome"), Some("exited 0"));

    // Resuming the passed run again sends nothing new.
    let r = tracked(&p, m, exp, &["resume", &id]).ok();
    assert!(r.stderr.contains("steps sent: 0"), "{}", r.stderr);
    let (parents, children) = split(&m.runs(exp));
    assert_eq!((parents.len(), children.len()), (1, 2));
    assert_eq!(m.history(train, "loss").len(), 3);
    // The run's leaderboard row is a metric of the parent, once.
    let board = m.history(run_id(&parents[0]), "leaderboard/m1/score");
    assert_eq!(board.len(), 1, "{board:?}");
    assert!((board[0].1 - 0.75).abs() < 1e-9, "{board:?}");
}

#[test]
fn no_tracking_sends_nothing_and_the_tracking_block_names_the_server() {
    let m = Mlflow::shared();
    let p = Project::new();
    p.file("go", "");
    let block = format!(
        "tracking:\n  mlflow: {}\n  experiment: tuna-e2e-block\n",
        m.uri()
    );
    p.file("wf.yaml", &workflow(&p, "track-block", &block));
    let r = p.run(&["run", "wf.yaml", "--no-tracking"]).ok();
    assert!(!r.stderr.contains("tracking"), "{}", r.stderr);
    assert!(m.experiment("tuna-e2e-block").is_none());
    let r = p.run(&["run", "wf.yaml", "-p", "lr=0.01"]).ok();
    let (parents, children) = split(&m.runs("tuna-e2e-block"));
    assert_eq!(parents.len(), 1);
    assert_eq!(tag(&parents[0], "tuna.run_id"), Some(r.run_id().as_str()));
    assert_eq!(param(&parents[0], "lr"), Some("0.01"));
    assert_eq!(children.len(), 2);
}

#[test]
fn a_server_that_is_down_is_one_warning_and_the_run_passes() {
    let closed = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let p = Project::new();
    p.file("go", "");
    p.file("wf.yaml", &workflow(&p, "track-down", ""));
    let out = p
        .tuna()
        .env("MLFLOW_TRACKING_URI", format!("http://127.0.0.1:{port}"))
        .args(["run", "wf.yaml"])
        .output()
        .unwrap();
    let r = Run::from(out).ok();
    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("MLflow")).collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(warnings[0].starts_with("warning: "), "{}", warnings[0]);
    assert!(warnings[0].contains("the run's result is unchanged"));
    assert_eq!(p.step_status(&r.run_id(), "eval"), "passed");
}

#[test]
fn a_run_the_daemon_drives_is_tracked_with_the_daemons_environment() {
    let m = Mlflow::shared();
    let p = Project::new();
    p.file("go", "");
    p.file("wf.yaml", &workflow(&p, "track-daemon", ""));
    let exp = "tuna-e2e-daemon";
    let d = crate::daemon_harness::Serve::start(
        &p,
        &[
            ("MLFLOW_TRACKING_URI", &m.uri()),
            ("MLFLOW_EXPERIMENT_NAME", exp),
        ],
    );
    let r = d.tuna(&p, &["submit", "wf.yaml", "--follow"]).ok();
    let id = r.run_id();
    tuna_tests::wait_until(std::time::Duration::from_secs(60), "the export", || {
        let (parents, children) = split(&m.runs(exp));
        parents.len() == 1 && status(&parents[0]) == "FINISHED" && children.len() == 2
    });
    let (parents, _) = split(&m.runs(exp));
    assert_eq!(tag(&parents[0], "tuna.run_id"), Some(id.as_str()));
}

#[test]
fn long_params_are_cut_long_histories_go_in_batches_and_git_and_user_are_tagged() {
    let m = Mlflow::shared();
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"name: track-limits
params:
  note: short
steps:
  train:
    run: |
      awk 'BEGIN { printf "{\"losses\": ["; for (i = 0; i < 2500; i++) printf "%s%d", (i ? "," : ""), i; printf "]}" }' > "$TUNA_OUTPUTS/finetune.json"
    outputs: [finetune.json]
"#,
    );
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .current_dir(p.root())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .expect("git")
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q", "-b", "exp-branch"]);
    git(&["add", "wf.yaml"]);
    git(&["commit", "-q", "-m", "wf"]);
    let head = std::process::Command::new("git")
        .current_dir(p.root())
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap().trim().to_string();
    let long = "n".repeat(7000);
    let exp = "tuna-e2e-limits";
    let out = p
        .tuna()
        .env("MLFLOW_TRACKING_URI", m.uri())
        .env("MLFLOW_EXPERIMENT_NAME", exp)
        .env("USER", "tuna-tester")
        .args(["run", "wf.yaml", "-p", &format!("note={long}")])
        .output()
        .unwrap();
    Run::from(out).ok();
    let (parents, children) = split(&m.runs(exp));
    let parent = &parents[0];
    assert_eq!(param(parent, "note").map(str::len), Some(6000));
    assert_eq!(tag(parent, "tuna.truncated_params"), Some("note"));
    assert_eq!(tag(parent, "mlflow.user"), Some("tuna-tester"));
    assert_eq!(tag(parent, "mlflow.source.git.commit"), Some(head.as_str()));
    assert_eq!(tag(parent, "mlflow.source.git.branch"), Some("exp-branch"));
    let loss = m.history(run_id(child(&children, "train")), "loss");
    assert_eq!(loss.len(), 2500);
    assert_eq!(loss[2499], (2499, 2499.0));
}

/// A server that answers every request with 500 and hands back the first request's head.
fn failing_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            while let Ok(n) = r.read_line(&mut head) {
                if n == 0 || head.ends_with("\r\n\r\n") {
                    break;
                }
            }
            let _ = tx.send(head);
            let mut s = s;
            let _ = s.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    (port, rx)
}

#[test]
fn credentials_travel_as_headers_and_an_erroring_server_is_one_warning() {
    let p = Project::new();
    p.file("go", "");
    p.file("wf.yaml", &workflow(&p, "track-auth", ""));
    for (vars, want) in [
        (
            vec![("MLFLOW_TRACKING_TOKEN", "tok-3141")],
            "authorization: Bearer tok-3141".to_string(),
        ),
        (
            vec![
                ("MLFLOW_TRACKING_USERNAME", "ann"),
                ("MLFLOW_TRACKING_PASSWORD", "pw-2718"),
            ],
            // base64("ann:pw-2718")
            "authorization: Basic YW5uOnB3LTI3MTg=".to_string(),
        ),
    ] {
        let (port, heads) = failing_server();
        let mut cmd = p.tuna();
        cmd.env("MLFLOW_TRACKING_URI", format!("http://127.0.0.1:{port}"));
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let r = Run::from(cmd.args(["run", "wf.yaml"]).output().unwrap()).ok();
        let head = heads
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains(&want.to_ascii_lowercase()),
            "{head}"
        );
        let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("MLflow")).collect();
        assert_eq!(warnings.len(), 1, "{}", r.stderr);
        assert!(warnings[0].contains("answered 500"), "{}", warnings[0]);
        for (_, v) in &vars {
            assert!(!r.stderr.contains(v) && !r.stdout.contains(v));
        }
    }
}

#[test]
fn a_cancelled_run_is_killed_in_mlflow() {
    use std::io::BufRead;
    let m = Mlflow::shared();
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: track-cancel\nsteps:\n  slow:\n    run: sleep 60\n  after:\n    needs: [slow]\n    run: echo after\n",
    );
    let exp = "tuna-e2e-cancel";
    let mut tuna = p
        .tuna()
        .env("MLFLOW_TRACKING_URI", m.uri())
        .env("MLFLOW_EXPERIMENT_NAME", exp)
        .args(["run", "wf.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut id = String::new();
    std::io::BufReader::new(tuna.stdout.take().unwrap())
        .read_line(&mut id)
        .unwrap();
    let id = id.trim().to_string();
    let limit = std::time::Duration::from_secs(30);
    tuna_tests::wait_until(limit, "slow to run", || {
        p.step_status(&id, "slow") == "running"
    });
    p.run(&["cancel", &id]).ok();
    tuna_tests::wait_until(limit, "tuna to exit", || tuna.try_wait().unwrap().is_some());
    let (parents, children) = split(&m.runs(exp));
    assert_eq!(parents.len(), 1);
    assert_eq!(status(&parents[0]), "KILLED");
    assert_eq!(tag(&parents[0], "tuna.status"), Some("cancelled"));
    let slow = child(&children, "slow");
    assert_eq!(status(slow), "KILLED");
    assert_eq!(tag(slow, "tuna.status"), Some("cancelled"));
    for (_, c) in &children {
        assert_eq!(status(c), "KILLED", "{c}");
    }
}

#[test]
fn a_cron_fire_is_tagged_with_its_scheduled_time() {
    use crate::daemon_harness::Serve;
    let m = Mlflow::shared();
    let p = Project::new();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A minute 30 minutes away: nothing fires in real time; the moved clock makes one due.
    let minute = (secs / 60 % 60 + 30) % 60;
    p.file(
        "nightly.yaml",
        &format!(
            "name: track-cron\nschedule:\n  cron: \"{minute} * * * *\"\n  timezone: UTC\n  missed: latest\nsteps:\n  stamp:\n    run: echo stamp\n"
        ),
    );
    let d = Serve::start(&p, &[]);
    d.tuna(&p, &["schedule", "add", "nightly.yaml"]).ok();
    d.kill();
    let exp = "tuna-e2e-cron";
    let _d = Serve::start(
        &p,
        &[
            ("TUNA_CLOCK_OFFSET_S", "21600"),
            ("MLFLOW_TRACKING_URI", &m.uri()),
            ("MLFLOW_EXPERIMENT_NAME", exp),
        ],
    );
    tuna_tests::wait_until(
        std::time::Duration::from_secs(90),
        "the fire's export",
        || {
            let (parents, _) = split(&m.runs(exp));
            parents.len() == 1 && status(&parents[0]) == "FINISHED"
        },
    );
    let (parents, children) = split(&m.runs(exp));
    let at = tag(&parents[0], "tuna.scheduled_time").expect("scheduled time tag");
    assert!(at.ends_with(&format!(":{minute:02}:00Z")), "{at}");
    assert_eq!(children.len(), 1);
}
