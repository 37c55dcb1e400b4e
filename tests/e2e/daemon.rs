//! The daemon end to end: a real `tuna serve` on 127.0.0.1, driven over HTTP and with the
//! `tuna` clients (`submit`, `--server` on `runs/status/logs/cancel/resume`).

use std::time::Duration;

use tuna_tests::{Project, wait_until};

use crate::daemon_harness::{Serve, TOKEN, submission};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn submit_runs_streams_logs_and_reports_the_result() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let flag = p.path("go");
    p.file(
        "wf.yaml",
        &format!(
            r#"name: hello
params:
  who: world
steps:
  talk:
    run: |
      echo "hello ${{{{ params.who }}}}"
      while [ ! -f {flag} ]; do sleep 0.05; done
      echo "bye"
  score:
    needs: [talk]
    run: "echo '{{\"acc\": 0.75}}' > $TUNA_METRICS"
"#,
            flag = flag.display()
        ),
    );
    let sub = d.tuna(&p, &["submit", "wf.yaml", "-p", "who=daemon"]).ok();
    let id = sub.run_id();
    assert_eq!(id.len(), 20, "a run id: {}", sub.stdout);
    // Follow the log live: it must show the first line while the step still waits.
    let mut follow = p
        .tuna()
        .env("TUNA_SERVER", &d.url)
        .env("TUNA_TOKEN", TOKEN)
        .args(["logs", &id, "talk", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(LIMIT, "the step to run", || {
        d.get_json(&format!("/api/v1/runs/{id}"))["steps"][0]["status"] == "running"
    });
    // The log shows the first line while the step still waits.
    wait_until(LIMIT, "the first log line", || {
        d.http(
            "GET",
            &format!("/api/v1/runs/{id}/steps/talk/log"),
            Some(TOKEN),
            None,
        )
        .1
        .contains("hello daemon")
    });
    std::fs::write(&flag, "").unwrap();
    let out = {
        let mut s = String::new();
        std::io::Read::read_to_string(follow.stdout.as_mut().unwrap(), &mut s).unwrap();
        assert!(follow.wait().unwrap().success());
        s
    };
    assert_eq!(
        out, "hello daemon\nbye\n",
        "logs -f printed the whole log, then ended"
    );
    wait_until(LIMIT, "the run to pass", || d.run_status(&id) == "passed");
    let v = d.get_json(&format!("/api/v1/runs/{id}"));
    assert_eq!(v["steps"][1]["metrics"]["acc"], 0.75);
    assert_eq!(v["needs"]["score"][0], "talk");
    let status = d.tuna(&p, &["status", &id]).ok();
    assert!(status.stdout.contains("passed"), "{}", status.stdout);
    let runs = d.tuna(&p, &["runs", "--json"]).ok();
    assert!(runs.stdout.contains(&id));
    // --follow exits like `tuna run`: a failing workflow gives 1.
    p.file("fail.yaml", "name: fails\nsteps:\n  a:\n    run: exit 3\n");
    let r = d.tuna(&p, &["submit", "fail.yaml", "--follow"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("a: failed"), "{}", r.stderr);
    // The server-sent event stream of a finished step: the log, then `end`.
    let (code, body) = d.http(
        "GET",
        &format!("/api/v1/runs/{id}/steps/talk/log/stream"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        body.contains("event: log") && body.contains("hello daemon"),
        "{body}"
    );
    assert!(
        body.contains("event: end") && body.contains("passed"),
        "{body}"
    );
}

#[test]
fn invalid_yaml_is_422_with_positions() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let bad = "name: bad\nsteps:\n  a:\n    rnu: echo hi\n";
    let (code, body) = d.http(
        "POST",
        "/api/v1/runs",
        Some(TOKEN),
        Some(&submission(bad, "bad.yaml")),
    );
    assert_eq!(code, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = &v["diagnostics"][0];
    assert_eq!(first["file"], "bad.yaml");
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(4), Some(5))
    );
    assert!(
        first["message"].as_str().unwrap().contains("rnu"),
        "{first}"
    );
    p.file("bad.yaml", bad);
    let r = d.tuna(&p, &["submit", "bad.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad.yaml:4:5"), "{}", r.stderr);
    // Unknown params are refused before anything runs.
    p.file("ok.yaml", "name: ok\nsteps:\n  a:\n    run: \"true\"\n");
    let r = d.tuna(&p, &["submit", "ok.yaml", "-p", "nope=1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
}

#[test]
fn auth_limits_and_paths() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    assert_eq!(d.http("GET", "/api/v1/health", None, None).0, 200);
    assert_eq!(d.http("GET", "/api/v1/runs", None, None).0, 401);
    assert_eq!(
        d.http("GET", "/api/v1/runs", Some("wrong-token-0123456789"), None)
            .0,
        401
    );
    assert_eq!(d.http("GET", "/", None, None).0, 401);
    assert_eq!(d.http("GET", "/api/v1/runs", Some(TOKEN), None).0, 200);
    let r = p
        .tuna()
        .env("TUNA_SERVER", &d.url)
        .env_remove("TUNA_TOKEN")
        .args(["runs"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("401"));
    // Bodies over the limit are refused.
    let big = submission(
        &format!(
            "name: big\n# {}\nsteps:\n  a:\n    run: \"true\"\n",
            "x".repeat(2 << 20)
        ),
        "big.yaml",
    );
    assert_eq!(
        d.http("POST", "/api/v1/runs", Some(TOKEN), Some(&big)).0,
        413
    );
    // No request path reaches outside tuna's folders.
    for path in [
        "/api/v1/runs/..%2F..%2Fetc/steps/passwd/log",
        "/api/v1/runs/x/steps/..%2F..%2F..%2Fetc%2Fpasswd/log",
        "/api/v1/runs/a.b/steps/c/log",
    ] {
        let (code, body) = d.http("GET", path, Some(TOKEN), None);
        assert_eq!(code, 400, "{path}: {body}");
    }
    let (code, _) = d.http(
        "GET",
        "/api/v1/runs/20990101-000000-0000",
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 404);
    // A submitted file name cannot place the workflow outside the home.
    let (code, body) = d.http(
        "POST",
        "/api/v1/runs",
        Some(TOKEN),
        Some(&submission(
            "name: p\nsteps:\n  a:\n    run: \"true\"\n",
            "../../../../tmp/evil.yaml",
        )),
    );
    assert_eq!(code, 201, "{body}");
    let sub = p.home().join("submissions");
    let stashed: Vec<_> = walk(&sub);
    assert!(
        stashed.iter().all(|f| f.starts_with(&sub))
            && stashed.iter().any(|f| f.ends_with("evil.yaml"))
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn cancel_and_resume_over_the_api() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let flag = p.path("go");
    let text = format!(
        "name: waits\nsteps:\n  first:\n    run: echo one >> {count}\n  wait:\n    needs: [first]\n    run: while [ ! -f {flag} ]; do sleep 0.05; done\n",
        count = p.path("count").display(),
        flag = flag.display()
    );
    p.file("wf.yaml", &text);
    let id = d.tuna(&p, &["submit", "wf.yaml"]).ok().run_id();
    wait_until(LIMIT, "the waiting step", || {
        d.get_json(&format!("/api/v1/runs/{id}"))["steps"][1]["status"] == "running"
    });
    let r = d.tuna(&p, &["cancel", &id]).ok();
    assert!(r.stdout.contains("cancelling"));
    wait_until(LIMIT, "the run to be cancelled", || {
        d.run_status(&id) == "cancelled"
    });
    // Cancelling again is a conflict (exit 2), not a crash.
    assert_eq!(d.tuna(&p, &["cancel", &id]).code, 2);
    std::fs::write(&flag, "").unwrap();
    let r = d.tuna(&p, &["resume", &id]).ok();
    assert_eq!(r.run_id(), id);
    wait_until(LIMIT, "the resumed run to pass", || {
        d.run_status(&id) == "passed"
    });
    assert_eq!(
        p.read("count"),
        "one\n",
        "the passed step did not run again"
    );
    let (code, _) = d.http(
        "POST",
        &format!("/api/v1/runs/{id}/resume"),
        Some(TOKEN),
        Some("{}"),
    );
    assert_eq!(code, 422, "a passed run cannot be resumed");
}

#[test]
fn sigkill_mid_run_then_restart_completes_without_running_a_step_twice() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let flag = p.path("go");
    let lines = p.path("lines");
    let text = format!(
        r#"name: survive
steps:
  a:
    run: echo a >> {lines}
  b:
    needs: [a]
    run: |
      echo b-start >> {lines}
      while [ ! -f {flag} ]; do sleep 0.05; done
      echo b-end >> {lines}
  c:
    needs: [b]
    run: echo c >> {lines}
"#,
        lines = lines.display(),
        flag = flag.display()
    );
    p.file("wf.yaml", &text);
    let id = d.tuna(&p, &["submit", "wf.yaml"]).ok().run_id();
    wait_until(LIMIT, "step b to start", || {
        p.read("lines").contains("b-start")
    });
    d.kill();
    std::fs::write(&flag, "").unwrap();
    let d = Serve::start(&p, &[]);
    wait_until(LIMIT, "the run to pass after the restart", || {
        d.run_status(&id) == "passed"
    });
    assert_eq!(p.read("lines"), "a\nb-start\nb-end\nc\n");
}
