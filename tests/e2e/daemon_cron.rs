//! Cron in the daemon: schedules registered with `tuna schedule add`, listed with their next
//! fire times; after a simulated downtime (`TUNA_CLOCK_OFFSET_S` moves the daemon's clock six
//! hours ahead) the missed-run policy decides which fires run, each once, with
//! `${{ run.scheduled_time }}` reaching the step. (Cron semantics and DST are unit-tested with
//! a fake clock in orchestrator/src/daemon.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tuna_tests::{Project, wait_until};

use crate::daemon_harness::Serve;

const LIMIT: Duration = Duration::from_secs(90);

/// A minute of the hour 30 minutes from now: no fire comes due in real time during the test.
fn far_minute() -> u64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (secs / 60 % 60 + 30) % 60
}

fn setup(missed: &str) -> (Project, u64) {
    let p = Project::new();
    let m = far_minute();
    p.file(
        "nightly.yaml",
        &format!(
            r#"name: nightly
schedule:
  cron: "{m} * * * *"
  timezone: UTC
  missed: {missed}
  concurrency: allow
steps:
  stamp:
    run: echo "${{{{ run.scheduled_time }}}}" >> {lines}
"#,
            lines = p.path("lines").display()
        ),
    );
    (p, m)
}

fn fired(p: &Project) -> Vec<String> {
    p.read("lines").lines().map(str::to_string).collect()
}

fn scheduled_runs(d: &Serve) -> usize {
    d.get_json("/api/v1/runs?workflow=nightly")
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn missed_all_runs_each_missed_fire_once_across_restarts() {
    let (p, m) = setup("all");
    let d = Serve::start(&p, &[]);
    let r = d.tuna(&p, &["schedule", "add", "nightly.yaml"]).ok();
    assert!(r.stdout.contains("scheduled nightly"), "{}", r.stdout);
    let list = d.tuna(&p, &["schedule", "list"]).ok();
    assert!(
        list.stdout.contains(&format!("{m} * * * *")),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains(&format!(":{m:02}:00Z")),
        "next fire times: {}",
        list.stdout
    );
    d.kill();
    // Six hours later: six fire times were missed.
    let d = Serve::start(&p, &[("TUNA_CLOCK_OFFSET_S", "21600")]);
    wait_until(LIMIT, "six scheduled runs", || fired(&p).len() >= 6);
    wait_until(LIMIT, "all to pass", || {
        d.get_json("/api/v1/runs?workflow=nightly&status=passed")
            .as_array()
            .unwrap()
            .len()
            == 6
    });
    let mut lines = fired(&p);
    assert_eq!(lines.len(), 6, "{lines:?}");
    for l in &lines {
        assert!(l.ends_with(&format!(":{m:02}:00Z")), "scheduled time {l}");
    }
    lines.dedup();
    assert_eq!(lines.len(), 6, "every fire distinct, in order");
    // Restarted again (same clock): nothing fires twice.
    d.kill();
    let d = Serve::start(&p, &[("TUNA_CLOCK_OFFSET_S", "21600")]);
    let v = d.get_json("/api/v1/schedules");
    assert_eq!(v[0]["recent"].as_array().unwrap().len(), 6);
    assert_eq!(scheduled_runs(&d), 6);
    assert_eq!(fired(&p).len(), 6);
}

#[test]
fn missed_latest_runs_only_the_newest_missed_fire() {
    let (p, m) = setup("latest");
    let d = Serve::start(&p, &[]);
    d.tuna(&p, &["schedule", "add", "nightly.yaml"]).ok();
    d.kill();
    let d = Serve::start(&p, &[("TUNA_CLOCK_OFFSET_S", "21600")]);
    wait_until(LIMIT, "one scheduled run to pass", || {
        d.get_json("/api/v1/runs?workflow=nightly&status=passed")
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    let fires = d.get_json("/api/v1/schedules")[0]["recent"].clone();
    let states: Vec<&str> = fires
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["state"].as_str().unwrap())
        .collect();
    // Newest first: the latest started, the five before it skipped.
    assert_eq!(
        states,
        [
            "started", "skipped", "skipped", "skipped", "skipped", "skipped"
        ]
    );
    assert_eq!(fired(&p).len(), 1);
    assert!(fired(&p)[0].ends_with(&format!(":{m:02}:00Z")));
    assert_eq!(scheduled_runs(&d), 1);
}

#[test]
fn a_file_without_schedule_is_refused_by_schedule_add() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    p.file(
        "plain.yaml",
        "name: plain\nsteps:\n  a:\n    run: \"true\"\n",
    );
    let r = d.tuna(&p, &["schedule", "add", "plain.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no `schedule:`"), "{}", r.stderr);
    // `tuna schedule` needs a daemon.
    let r = p.run(&["schedule", "list"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--server"), "{}", r.stderr);
}
