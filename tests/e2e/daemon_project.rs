//! Submissions carry their project: `tuna submit` and `tuna schedule add` send the files a
//! workflow reads (inputs, `with:` paths) by content to a real `tuna serve`, which lays them out
//! as the run's project folder. Cache keys equal a local run's; an unchanged project uploads
//! nothing (the daemon's own counter says so); bad paths, oversized and missing files are
//! refused by name before anything is registered; `tuna gc` drops unused snapshots.

use std::collections::BTreeMap;
use std::time::Duration;

use tuna_tests::{Project, wait_until, workspace_root};

use crate::daemon_harness::{Serve, TOKEN};

const LIMIT: Duration = Duration::from_secs(90);

/// Bytes the daemon has read from blob uploads since it started.
pub fn received(d: &Serve) -> u64 {
    d.get_json("/api/v1/metrics")["uploads"]["bytes_received"]
        .as_u64()
        .expect("bytes_received")
}

/// A run's steps (as `GET /api/v1/runs/ID` or `tuna status --json` show it): name, status and
/// outputs, in order.
pub fn steps(run: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["outputs"].clone(),
            )
        })
        .collect()
}

/// Each step's status in a daemon run.
pub fn statuses(d: &Serve, run: &str) -> BTreeMap<String, String> {
    steps(&d.get_json(&format!("/api/v1/runs/{run}")))
        .into_iter()
        .map(|(name, status, _)| (name, status))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn quickstart_submitted_with_follow_runs_to_the_end_with_the_cache_keys_of_a_local_run() {
    let p = Project::new();
    let wf = workspace_root().join("workflows/quickstart.yaml");
    let wf = wf.to_str().unwrap();
    let d = Serve::start(&p, &[]);
    let r = d.tuna(&p, &["submit", wf, "--follow"]).ok();
    let id = r.run_id();
    assert!(r.stderr.contains("summary: passed"), "{}", r.stderr);
    assert!(r.stderr.contains("project: 1 file"), "{}", r.stderr);
    let st = statuses(&d, &id);
    assert!(st.values().all(|s| s == "passed"), "{st:?}");
    d.kill();
    // The same files run here, in the same home: every cacheable step is a hit.
    let local = p.run(&["run", wf]).ok();
    assert_eq!(
        p.step_statuses(&local.run_id()),
        [
            ("count", "cached"),
            ("top-words", "cached"),
            ("stats", "cached"),
            ("summary", "passed")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

const TWO_INPUTS: &str = r#"name: two-inputs
steps:
  words:
    inputs: [a.txt]
    run: wc -w < a.txt > n.txt
    outputs: [n.txt]
  lines:
    inputs: [data/]
    run: cat data/x.txt data/deep/y.txt | wc -l > n.txt
    outputs: [n.txt]
  report:
    needs: [words]
    run: cat ${{ steps.words.outputs.n.txt }}
"#;

#[test]
fn a_changed_input_reruns_only_its_steps_and_an_unchanged_project_uploads_nothing() {
    let p = Project::new();
    p.file("two.yaml", TWO_INPUTS)
        .file("a.txt", "one two three\n")
        .file("data/x.txt", "1\n2\n")
        .file("data/deep/y.txt", "3\n");
    let d = Serve::start(&p, &[]);
    let first = d.tuna(&p, &["submit", "two.yaml", "--follow"]).ok();
    let all_passed = map(&[
        ("lines", "passed"),
        ("report", "passed"),
        ("words", "passed"),
    ]);
    assert_eq!(statuses(&d, &first.run_id()), all_passed);
    let sent = received(&d);
    assert_eq!(sent, 14 + 4 + 2, "the three files, once");

    let again = d.tuna(&p, &["submit", "two.yaml", "--follow"]).ok();
    assert_eq!(received(&d), sent, "an unchanged project uploads 0 bytes");
    assert!(
        again.stderr.contains("nothing uploaded"),
        "{}",
        again.stderr
    );
    let st = statuses(&d, &again.run_id());
    assert_eq!(st["lines"], "cached", "{st:?}");
    assert_eq!(st["words"], "cached", "{st:?}");

    p.file("data/deep/y.txt", "3\n4\n");
    let changed = d.tuna(&p, &["submit", "two.yaml", "--follow"]).ok();
    assert_eq!(received(&d), sent + 4, "only the changed file travels");
    let st = statuses(&d, &changed.run_id());
    assert_eq!(st["lines"], "passed", "it reads the changed folder: {st:?}");
    assert_eq!(st["words"], "cached", "{st:?}");
    // The step read the new content in its project folder on the daemon.
    let v = d.get_json(&format!("/api/v1/runs/{}", changed.run_id()));
    let out = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "lines")
        .unwrap()["outputs"]["n.txt"]
        .as_str()
        .unwrap()
        .to_string();
    let want = format!("b3:{}", blake3::hash(b"4\n").to_hex());
    assert_eq!(out, want, "4 lines counted, the new one included");
}

#[test]
fn bad_paths_and_oversized_files_are_refused_with_their_names() {
    let p = Project::new();
    let d = Serve::start_with(
        &p,
        &[],
        &["--max-file-size", "1KiB", "--max-submission-size", "3KiB"],
    );
    let step = |inputs: &str| {
        format!("name: bad\nsteps:\n  a:\n    inputs: [{inputs}]\n    run: \"true\"\n")
    };
    p.file("big.yaml", &step("big.bin"))
        .file("big.bin", &"x".repeat(2000));
    let r = d.tuna(&p, &["submit", "big.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("big.bin") && r.stderr.contains("per-file limit of 1 KiB"),
        "{}",
        r.stderr
    );
    p.file("many.yaml", &step("parts/"));
    for i in 0..4 {
        p.file(&format!("parts/{i}.txt"), &"y".repeat(1000));
    }
    let r = d.tuna(&p, &["submit", "many.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("per-submission limit of 3 KiB"),
        "{}",
        r.stderr
    );
    // A symbolic link that leads out of the project is refused here, by name.
    p.file("outside/secret.txt", "secret");
    p.file("proj/leak.yaml", &step("linked/"));
    p.file("proj/linked/ok.txt", "ok");
    std::os::unix::fs::symlink(p.path("outside/secret.txt"), p.path("proj/linked/leak.txt"))
        .unwrap();
    let r = d.tuna(&p, &["submit", "proj/leak.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("linked/leak.txt") && r.stderr.contains("outside the project"),
        "{}",
        r.stderr
    );
    // A `with:` path with `..` never travels.
    p.file(
        "proj/up.yaml",
        "name: up\nsteps:\n  base:\n    uses: model.init\n    with: { corpus: ../outside/secret.txt }\n",
    );
    let r = d.tuna(&p, &["submit", "proj/up.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("../outside/secret.txt"), "{}", r.stderr);
    assert_eq!(received(&d), 0, "nothing was uploaded");

    // The daemon checks again what other clients send.
    let check = |files: serde_json::Value| {
        d.http(
            "POST",
            "/api/v1/blobs/missing",
            Some(TOKEN),
            Some(&serde_json::json!({ "files": files }).to_string()),
        )
    };
    let digest = format!("b3:{}", blake3::hash(b"x").to_hex());
    for bad in ["../x", "/etc/passwd", "a/../../x", "a//b"] {
        let (code, body) = check(serde_json::json!([{ "path": bad, "digest": digest, "size": 1 }]));
        assert_eq!(code, 422, "{bad}: {body}");
        assert!(body.contains(&bad.replace('"', "")), "{bad}: {body}");
    }
    let (code, body) =
        check(serde_json::json!([{ "path": "big.bin", "digest": digest, "size": 5000 }]));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("big.bin"), "{body}");
    // An upload that does not hash to its name is refused and not stored; one over the
    // per-file limit is refused whatever it holds.
    let (code, body) = d.http(
        "PUT",
        &format!("/api/v1/blobs/{digest}"),
        Some(TOKEN),
        Some("not x"),
    );
    assert_eq!(code, 422, "{body}");
    let (code, body) = d.http(
        "PUT",
        &format!("/api/v1/blobs/{digest}"),
        Some(TOKEN),
        Some(&"z".repeat(2000)),
    );
    assert_eq!(code, 413, "{body}");
    let (_, body) = check(serde_json::json!([{ "path": "x", "digest": digest, "size": 1 }]));
    assert!(body.contains(&digest), "still missing: {body}");
    // A submission naming a blob that was never uploaded creates nothing.
    let sub = serde_json::json!({
        "workflow": step("x"), "file": "x.yaml",
        "project": { "files": [{ "path": "x", "digest": digest, "size": 1 }] },
    });
    let (code, body) = d.http("POST", "/api/v1/runs", Some(TOKEN), Some(&sub.to_string()));
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("`x`") && body.contains("upload it first"),
        "{body}"
    );
    assert_eq!(d.get_json("/api/v1/runs"), serde_json::json!([]));
}

const NIGHTLY: &str = r#"name: nightly-words
schedule: { cron: "0 3 * * *", timezone: UTC }
params:
  text: texts/a.txt
steps:
  count:
    uses: data.prepare
    with: { input: "${{ params.text }}" }
"#;

#[test]
fn a_schedule_keeps_its_project_and_a_missing_file_is_refused_at_registration() {
    let p = Project::new();
    p.file("nightly.yaml", NIGHTLY);
    let d = Serve::start(&p, &[]);
    // Its file is not there: refused now, by name, and nothing is registered.
    let r = d.tuna(&p, &["schedule", "add", "nightly.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("texts/a.txt"), "{}", r.stderr);
    assert_eq!(d.get_json("/api/v1/schedules"), serde_json::json!([]));
    // Through the API without the file (as an old client would send it): refused too.
    let (code, body) = d.http(
        "POST",
        "/api/v1/schedules",
        Some(TOKEN),
        Some(&crate::daemon_harness::submission(NIGHTLY, "nightly.yaml")),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("texts/a.txt"), "{body}");
    assert_eq!(d.get_json("/api/v1/schedules"), serde_json::json!([]));

    p.file("texts/a.txt", "{\"text\": \"a\"}\n");
    let r = d.tuna(&p, &["schedule", "add", "nightly.yaml"]).ok();
    assert!(r.stdout.contains("(2 files)"), "{}", r.stdout);
    let first = d.get_json("/api/v1/schedules")[0]["snapshot"].clone();
    assert_eq!(first["files"], 2, "{first}");
    let digest = first["digest"].as_str().unwrap().to_string();
    let list = d.tuna(&p, &["schedule", "list"]).ok();
    let hex = digest.trim_start_matches("b3tree:");
    assert!(list.stdout.contains(&hex[..12]), "{}", list.stdout);
    assert!(list.stdout.contains("(2 files)"), "{}", list.stdout);
    // Registering again with another file replaces the snapshot.
    p.file("texts/b.txt", "{\"text\": \"b\"}\n");
    d.tuna(
        &p,
        &["schedule", "add", "nightly.yaml", "-p", "text=texts/b.txt"],
    )
    .ok();
    let second = d.get_json("/api/v1/schedules");
    assert_eq!(second.as_array().unwrap().len(), 1);
    assert_ne!(second[0]["snapshot"]["digest"], first["digest"]);
    let layout = p.home().join("submissions").join(
        second[0]["snapshot"]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("b3tree:"),
    );
    assert!(layout.join("texts/b.txt").is_file(), "{}", layout.display());
    assert!(!layout.join("texts/a.txt").exists());
}

#[test]
fn gc_on_the_daemons_home_drops_snapshots_no_run_or_schedule_uses() {
    let p = Project::new();
    let one = "name: one\nsteps:\n  a:\n    inputs: [one.txt]\n    run: cat one.txt\n";
    let two = "name: two\nsteps:\n  a:\n    inputs: [two.txt]\n    run: cat two.txt\n";
    p.file("one.yaml", one)
        .file("one.txt", "first project\n")
        .file("two.yaml", two)
        .file("two.txt", "second project\n")
        .file(
            "sched.yaml",
            &format!(
                "{}schedule: {{ cron: \"0 3 * * *\" }}\n",
                two.replace("name: two", "name: sched")
            ),
        );
    let d = Serve::start(&p, &[]);
    d.tuna(&p, &["submit", "one.yaml", "--follow"]).ok();
    d.tuna(&p, &["schedule", "add", "sched.yaml"]).ok();
    d.tuna(&p, &["submit", "two.yaml", "--follow"]).ok();
    let folders = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p.home().join("submissions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(folders().len(), 3);
    d.tuna(&p, &["schedule", "remove", "sched"]).ok();
    let sent = received(&d);
    d.kill();
    // Keep the newest run only: run `one` and the removed schedule leave their snapshots unused.
    let gc = p.run(&["gc", "--keep", "1"]).ok();
    assert!(
        gc.stdout.contains("removed 2 submission snapshots"),
        "{}",
        gc.stdout
    );
    let left = folders();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        p.home()
            .join("submissions")
            .join(&left[0])
            .join("two.txt")
            .is_file(),
        "{left:?}"
    );
    // The kept snapshot's blobs stay in the store: resubmitting it uploads nothing, while
    // the dropped project's file travels again.
    let d = Serve::start(&p, &[]);
    assert_eq!(received(&d), 0);
    d.tuna(&p, &["submit", "two.yaml", "--follow"]).ok();
    assert_eq!(received(&d), 0, "two.txt is still in the store");
    d.tuna(&p, &["submit", "one.yaml", "--follow"]).ok();
    assert_eq!(received(&d), "first project\n".len() as u64);
    assert!(sent > 0);
    wait_until(LIMIT, "the daemon to be idle", || {
        d.get_json("/api/v1/metrics")["runs_driven"] == 0
    });
}
