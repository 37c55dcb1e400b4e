//! `tuna gc` on the ssh runners' hosts: kept outputs of dropped runs and their remote attempt
//! folders go, those of retained runs stay (and can still be pulled); a dry run deletes
//! nothing; a host that is down is reported and the others are still cleaned; a cache entry
//! whose kept output is gone is never a hit.

use std::time::Duration;

use serde_json::Value;
use tuna_tests::{Project, wait_until};

use super::ssh::{Host, skip, spawn, tuna};
use super::ssh_artifacts::{b3, keeping_inventory, plan_line};

/// `train` keeps an 8 KiB file on the A100 host, `shard` a folder on the T4 host; both made of
/// the character `fill`.
const WORKFLOW: &str = r#"
name: gc
params:
  fill: a
steps:
  train:
    runs-on: a100-box
    run: printf '%8192s' | tr ' ' ${{ params.fill }} > model.bin
    outputs: [model.bin]
  shard:
    runs-on: t4-box
    run: |
      mkdir -p shards
      printf '%4096s' | tr ' ' ${{ params.fill }} > shards/one.bin
      echo ${{ params.fill }} > shards/name.txt
    outputs: [shards/]
"#;

fn model(fill: u8) -> String {
    b3(&[fill; 8192])
}

fn shard(fill: u8) -> String {
    b3(&[fill; 4096])
}

/// Two hosts and two runs: the first with fill `a`, the second with fill `b`.
fn two_runs() -> (Host, Host, Project, String, String) {
    let a100 = Host::start("a100-box", "127.0.0.2", "a100", 1, 2.90);
    let t4 = Host::start("t4-box", "127.0.0.1", "t4", 1, 0.35);
    let p = Project::new();
    keeping_inventory(&p, &[&a100, &t4]);
    p.file("wf.yaml", WORKFLOW);
    let id1 = tuna(&p, &["run", "wf.yaml", "-p", "fill=a"]).ok().run_id();
    let id2 = tuna(&p, &["run", "wf.yaml", "-p", "fill=b"]).ok().run_id();
    for fill in [b'a', b'b'] {
        assert!(a100.remote(&format!("cas/{}", model(fill))).exists());
        assert!(t4.remote(&format!("cas/{}", shard(fill))).exists());
    }
    (a100, t4, p, id1, id2)
}

fn host<'a>(report: &'a Value, runner: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["runner"] == runner)
        .unwrap_or_else(|| panic!("no host {runner} in {report}"))
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gc_drops_kept_outputs_of_dropped_runs_on_their_hosts() {
    if skip() {
        return;
    }
    let (a100, t4, p, id1, id2) = two_runs();
    let first = [
        a100.remote(&format!("cas/{}", model(b'a'))),
        a100.remote(&format!("runs/{id1}/train/1")),
        t4.remote(&format!("cas/{}", shard(b'a'))),
        t4.remote(&format!("runs/{id1}/shard/1")),
    ];
    let second = [
        a100.remote(&format!("cas/{}", model(b'b'))),
        a100.remote(&format!("runs/{id2}/train/1")),
        t4.remote(&format!("cas/{}", shard(b'b'))),
        t4.remote(&format!("cas/{}", b3(b"b\n"))),
        t4.remote(&format!("runs/{id2}/shard/1")),
    ];

    // A dry run lists what would go and deletes nothing, here or there.
    let dry = tuna(&p, &["gc", "--keep", "1", "--dry-run"]).ok();
    assert!(dry.stdout.contains(&model(b'a')), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains(&format!("attempt folder runs/{id1}/train/1")),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains(&model(b'b')), "{}", dry.stdout);
    let dry = tuna(&p, &["gc", "--keep", "1", "--dry-run", "--json"]).ok();
    let report: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(names(&report["local"]["runs_removed"]), vec![id1.clone()]);
    let t4_plan = host(&report, "t4-box");
    assert_eq!(t4_plan["state"], "cleaned", "{report}");
    assert!(names(&t4_plan["blobs"]).contains(&shard(b'a')), "{report}");
    assert!(!names(&t4_plan["blobs"]).contains(&shard(b'b')), "{report}");
    for path in first.iter().chain(&second) {
        assert!(path.exists(), "the dry run deleted {}", path.display());
    }
    assert_eq!(p.status(&id1)["status"], "passed");

    let gc = tuna(&p, &["gc", "--keep", "1", "--json"]).ok();
    let report: Value = serde_json::from_str(&gc.stdout).unwrap();
    let a100_done = host(&report, "a100-box");
    assert_eq!(a100_done["state"], "cleaned", "{report}");
    assert!(
        a100_done["blobs_removed"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(
        a100_done["bytes_freed"].as_u64().unwrap() >= 8192,
        "{report}"
    );
    assert_eq!(
        names(&a100_done["attempt_dirs"]),
        vec![format!("{id1}/train/1")],
        "{report}"
    );
    assert_eq!(a100_done["attempt_dirs_removed"], 1);
    for path in &first {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    assert!(!a100.remote(&format!("runs/{id1}")).exists());
    for path in &second {
        assert!(path.exists(), "gc deleted {}", path.display());
    }

    // The retained run's kept outputs still come here.
    tuna(&p, &["pull", &id2, "train", "--to", "pulled"]).ok();
    assert_eq!(
        std::fs::read(p.path("pulled/model.bin")).unwrap(),
        [b'b'; 8192]
    );
    tuna(&p, &["pull", &id2, "shard", "--to", "pulled"]).ok();
    assert_eq!(p.read("pulled/shards/name.txt"), "b\n");
    // The retained run is still a cache hit; the dropped one is not.
    let plan = tuna(&p, &["plan", "wf.yaml", "-p", "fill=b"]).ok();
    assert!(
        plan.stdout.contains("2 of 2 steps cached"),
        "{}",
        plan.stdout
    );
    let plan = tuna(&p, &["plan", "wf.yaml", "-p", "fill=a"]).ok();
    assert!(
        plan.stdout.contains("0 of 2 steps cached"),
        "{}",
        plan.stdout
    );

    // A second gc finds nothing more on the hosts.
    let again = tuna(&p, &["gc", "--keep", "1"]).ok();
    assert!(
        again
            .stdout
            .contains("host of runner `a100-box`: removed 0 blobs (0 bytes), 0 attempt folders"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_host_that_is_down_is_reported_and_the_others_are_still_cleaned() {
    if skip() {
        return;
    }
    let (mut a100, t4, p, id1, _id2) = two_runs();
    a100.sshd.stop();
    let gc = tuna(&p, &["gc", "--keep", "1", "--json"]).ok();
    let report: Value = serde_json::from_str(&gc.stdout).unwrap();
    let down = host(&report, "a100-box");
    assert_eq!(down["state"], "unreachable", "{report}");
    assert!(
        down["reason"].as_str().unwrap().contains("does not answer"),
        "{report}"
    );
    assert_eq!(host(&report, "t4-box")["state"], "cleaned", "{report}");
    assert!(!t4.remote(&format!("cas/{}", shard(b'a'))).exists());
    assert!(!t4.remote(&format!("runs/{id1}")).exists());
    assert!(t4.remote(&format!("cas/{}", shard(b'b'))).exists());
    assert!(a100.remote(&format!("cas/{}", model(b'a'))).exists());

    // Asked for that host alone, gc could do nothing there: it says so in its exit code.
    let only = tuna(&p, &["gc", "--runner", "a100-box"]);
    assert_eq!(only.code, 3, "{}\n{}", only.stdout, only.stderr);
    assert!(only.stdout.contains("unreachable"), "{}", only.stdout);
    let bad = tuna(&p, &["gc", "--runner", "local"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    // Back up: the next gc drops what the run dropped while it was down left there.
    a100.sshd.restart();
    let gc = tuna(&p, &["gc", "--runner", "a100-box", "--json"]).ok();
    let report: Value = serde_json::from_str(&gc.stdout).unwrap();
    let back = host(&report, "a100-box");
    assert_eq!(back["state"], "cleaned", "{report}");
    assert!(names(&back["blobs"]).contains(&model(b'a')), "{report}");
    assert!(!a100.remote(&format!("cas/{}", model(b'a'))).exists());
    assert!(!a100.remote(&format!("runs/{id1}")).exists());
    assert!(a100.remote(&format!("cas/{}", model(b'b'))).exists());
}

#[test]
fn a_cache_entry_whose_kept_output_was_collected_is_not_a_hit() {
    if skip() {
        return;
    }
    let (a100, _t4, p, _id1, id2) = two_runs();
    // Another tuna home with the same inventory (records lost or moved) has no record of
    // these outputs: its gc takes them all off the hosts.
    let other = p.path("other-home");
    let gc = p
        .tuna()
        .args(["--runners", "runners.yaml", "--home"])
        .arg(&other)
        .arg("gc")
        .output()
        .unwrap();
    assert!(gc.status.success(), "{gc:?}");
    assert!(!a100.remote(&format!("cas/{}", model(b'b'))).exists());
    assert!(!a100.remote(&format!("runs/{id2}")).exists());
    // This home's entry for the second run names an output that is gone: plan says so.
    let plan = tuna(&p, &["plan", "wf.yaml", "-p", "fill=b"]).ok();
    assert!(
        plan_line(&plan, "train").contains("output model.bin missing on runner a100-box"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("0 of 2 steps cached"),
        "{}",
        plan.stdout
    );
    let id3 = tuna(&p, &["run", "wf.yaml", "-p", "fill=b"]).ok().run_id();
    assert_eq!(p.step_status(&id3, "train"), "passed");
    assert!(a100.remote(&format!("cas/{}", model(b'b'))).exists());
}

#[test]
fn a_host_with_a_running_step_is_left_alone() {
    // The step's job may be reading blobs no record names yet.
    if skip() {
        return;
    }
    let (a100, t4, p, _id1, _id2) = two_runs();
    p.file(
        "hold.yaml",
        &format!(
            "name: hold\nsteps:\n  hold:\n    runs-on: a100-box\n    run: |\n      \
             touch {started}\n      while [ ! -e {go} ]; do sleep 0.1; done\n",
            started = p.path("started").display(),
            go = p.path("go").display()
        ),
    );
    let (mut child, id3) = spawn(&p, &["run", "hold.yaml"]);
    wait_until(Duration::from_secs(30), "the step to start", || {
        p.path("started").exists()
    });
    // tuna goes away (gc cannot run beside it); its step runs on and stays recorded running.
    child.kill().unwrap();
    child.wait().unwrap();
    let gc = tuna(&p, &["gc", "--keep", "1", "--json"]).ok();
    let report: Value = serde_json::from_str(&gc.stdout).unwrap();
    let busy = host(&report, "a100-box");
    assert_eq!(busy["state"], "busy", "{report}");
    assert!(
        busy["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{id3}/hold")),
        "{report}"
    );
    assert!(a100.remote(&format!("cas/{}", model(b'a'))).exists());
    assert!(a100.remote(&format!("runs/{id3}/hold/1")).exists());
    // The other host has no step running: both dropped runs' outputs go there.
    assert_eq!(host(&report, "t4-box")["state"], "cleaned", "{report}");
    assert!(!t4.remote(&format!("cas/{}", shard(b'b'))).exists());

    std::fs::write(p.path("go"), "").unwrap();
    tuna(&p, &["resume", &id3]).ok();
    assert_eq!(p.step_status(&id3, "hold"), "passed");
    tuna(&p, &["gc", "--keep", "1"]).ok();
    for fill in [b'a', b'b'] {
        assert!(!a100.remote(&format!("cas/{}", model(fill))).exists());
    }
    assert!(a100.remote(&format!("runs/{id3}/hold/1")).exists());
}
