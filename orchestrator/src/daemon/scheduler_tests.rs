//! The scheduler against a fake clock and a fake launcher: due fires, missed-run policies after
//! a simulated downtime, concurrency policies, idempotent fires, crash repair.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::clock::FakeClock;
use super::scheduler::{Launcher, Scheduler, fire_id};
use crate::store::{DAEMON_FORMAT_MAJOR, FireRecord, FireState, ScheduleRecord, Store};

#[derive(Default)]
struct Fake {
    started: Mutex<Vec<(String, String)>>,
    active: Mutex<BTreeSet<String>>,
    cancelled: Mutex<Vec<String>>,
    existing: Mutex<BTreeMap<String, String>>,
}

impl Launcher for Fake {
    fn active(&self, _: &str) -> Vec<String> {
        self.active.lock().unwrap().iter().cloned().collect()
    }
    fn cancel(&self, run: &str) {
        self.cancelled.lock().unwrap().push(run.to_string());
        self.active.lock().unwrap().remove(run);
    }
    fn start(&self, s: &ScheduleRecord, time: &str) -> Result<String, String> {
        let mut started = self.started.lock().unwrap();
        let run = format!("run-{}", started.len());
        started.push((s.name.clone(), time.to_string()));
        self.active.lock().unwrap().insert(run.clone());
        Ok(run)
    }
    fn find(&self, _: &str, time: &str) -> Option<String> {
        self.existing.lock().unwrap().get(time).cloned()
    }
}

impl Fake {
    fn times(&self) -> Vec<String> {
        self.started
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }
    fn finish_all(&self) {
        self.active.lock().unwrap().clear();
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    clock: Arc<FakeClock>,
    sched: Scheduler,
    fake: Fake,
}

fn world(cron: &str, missed: &str, concurrency: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let clock = Arc::new(FakeClock::new(t("2024-03-01T00:00:00Z")));
    let sched = Scheduler::new(store.clone(), clock.clone());
    let text = format!(
        "name: nightly\nschedule:\n  cron: \"{cron}\"\n  missed: {missed}\n  concurrency: {concurrency}\nsteps:\n  a:\n    run: \"true\"\n"
    );
    let dag = crate::dag::load_str(std::path::Path::new("wf.yaml"), &text).unwrap();
    sched
        .register(
            dag.workflow(),
            &text,
            "wf.yaml",
            &BTreeMap::new(),
            crate::store::SnapshotRef {
                digest: "b3tree:00".into(),
                files: 1,
            },
        )
        .unwrap();
    World {
        _dir: dir,
        store,
        clock,
        sched,
        fake: Fake::default(),
    }
}

#[test]
fn a_due_fire_starts_once_even_on_a_double_tick() {
    let w = world("*/10 * * * *", "skip", "allow");
    w.clock.set(t("2024-03-01T00:05:00Z"));
    assert!(w.sched.tick(&w.fake).unwrap().is_empty());
    w.clock.set(t("2024-03-01T00:10:01Z"));
    let fires = w.sched.tick(&w.fake).unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(w.fake.times(), ["2024-03-01T00:10:00Z"]);
    assert_eq!(w.sched.tick(&w.fake).unwrap().len(), 0);
    // A crash before the cursor moved: the same interval is looked at again, nothing restarts.
    let mut rec = w.store.schedule("nightly").unwrap().unwrap();
    rec.cursor_ms = t("2024-03-01T00:00:00Z").timestamp_millis();
    w.store.put_schedule(&rec).unwrap();
    assert_eq!(w.sched.tick(&w.fake).unwrap().len(), 0);
    assert_eq!(w.fake.times().len(), 1);
    let fire = w
        .store
        .fire(&fire_id("nightly", t("2024-03-01T00:10:00Z")))
        .unwrap()
        .unwrap();
    assert_eq!(
        fire.state,
        FireState::Started {
            run: "run-0".into()
        }
    );
}

/// The daemon was down from 00:00 to 01:00:30: fires 00:10–00:50 are missed, 01:00 is on time.
fn after_downtime(missed: &str, now: &str) -> Vec<String> {
    let w = world("*/10 * * * *", missed, "allow");
    w.clock.set(t(now));
    w.sched.tick(&w.fake).unwrap();
    let skipped = w
        .store
        .fires("nightly")
        .unwrap()
        .iter()
        .filter(|f| matches!(f.state, FireState::Skipped { .. }))
        .count();
    assert_eq!(
        w.store.fires("nightly").unwrap().len(),
        6,
        "every due fire is recorded"
    );
    assert_eq!(skipped + w.fake.times().len(), 6);
    w.fake.times()
}

#[test]
fn missed_skip_runs_only_the_on_time_fire() {
    assert_eq!(
        after_downtime("skip", "2024-03-01T01:00:30Z"),
        ["2024-03-01T01:00:00Z"]
    );
    assert!(after_downtime("skip", "2024-03-01T01:05:00Z").is_empty());
}

#[test]
fn missed_latest_runs_the_newest_missed_fire_once() {
    assert_eq!(
        after_downtime("latest", "2024-03-01T01:05:00Z"),
        ["2024-03-01T01:00:00Z"]
    );
    // With an on-time fire, that one is the latest: no extra catch-up run.
    assert_eq!(
        after_downtime("latest", "2024-03-01T01:00:30Z"),
        ["2024-03-01T01:00:00Z"]
    );
}

#[test]
fn missed_all_runs_every_missed_fire_in_order() {
    assert_eq!(
        after_downtime("all", "2024-03-01T01:05:00Z"),
        [
            "2024-03-01T00:10:00Z",
            "2024-03-01T00:20:00Z",
            "2024-03-01T00:30:00Z",
            "2024-03-01T00:40:00Z",
            "2024-03-01T00:50:00Z",
            "2024-03-01T01:00:00Z"
        ]
    );
}

#[test]
fn concurrency_forbid_skips_while_a_run_goes() {
    let w = world("*/10 * * * *", "skip", "forbid");
    w.clock.set(t("2024-03-01T00:10:00Z"));
    w.sched.tick(&w.fake).unwrap();
    w.clock.set(t("2024-03-01T00:20:00Z"));
    let fires = w.sched.tick(&w.fake).unwrap();
    assert!(matches!(&fires[0].state, FireState::Skipped { reason } if reason.contains("forbid")));
    w.fake.finish_all();
    w.clock.set(t("2024-03-01T00:30:00Z"));
    w.sched.tick(&w.fake).unwrap();
    assert_eq!(
        w.fake.times(),
        ["2024-03-01T00:10:00Z", "2024-03-01T00:30:00Z"]
    );
}

#[test]
fn concurrency_replace_cancels_the_running_one() {
    let w = world("*/10 * * * *", "skip", "replace");
    w.clock.set(t("2024-03-01T00:10:00Z"));
    w.sched.tick(&w.fake).unwrap();
    w.clock.advance(Duration::minutes(10));
    w.sched.tick(&w.fake).unwrap();
    assert_eq!(*w.fake.cancelled.lock().unwrap(), ["run-0"]);
    assert_eq!(w.fake.times().len(), 2);
}

#[test]
fn concurrency_allow_overlaps() {
    let w = world("*/10 * * * *", "skip", "allow");
    for m in ["00:10", "00:20", "00:30"] {
        w.clock.set(t(&format!("2024-03-01T{m}:00Z")));
        w.sched.tick(&w.fake).unwrap();
    }
    assert_eq!(w.fake.times().len(), 3);
    assert!(w.fake.cancelled.lock().unwrap().is_empty());
}

#[test]
fn a_claimed_fire_is_linked_or_started_on_repair() {
    let w = world("*/10 * * * *", "skip", "allow");
    let claim = |time: &str| {
        let fire = FireRecord {
            format: DAEMON_FORMAT_MAJOR,
            id: fire_id("nightly", t(time)),
            schedule: "nightly".into(),
            scheduled_ms: t(time).timestamp_millis(),
            scheduled_time: time.to_string(),
            state: FireState::Claimed,
            decided_at: 0,
        };
        assert!(w.store.claim_fire(&fire).unwrap());
        assert!(!w.store.claim_fire(&fire).unwrap(), "claims are exclusive");
    };
    claim("2024-03-01T00:10:00Z");
    claim("2024-03-01T00:20:00Z");
    w.fake
        .existing
        .lock()
        .unwrap()
        .insert("2024-03-01T00:10:00Z".into(), "crashed-run".into());
    let repaired = w.sched.repair(&w.fake).unwrap();
    assert_eq!(repaired.len(), 2);
    assert_eq!(
        repaired[0].state,
        FireState::Started {
            run: "crashed-run".into()
        }
    );
    assert_eq!(w.fake.times(), ["2024-03-01T00:20:00Z"]);
    assert!(w.sched.repair(&w.fake).unwrap().is_empty());
}

#[test]
fn list_shows_next_fire_times_in_the_zone() {
    let w = world("0 2 * * 1-5", "skip", "allow");
    let list = w.sched.list(3).unwrap();
    // 2024-03-01 is a Friday.
    assert_eq!(
        list[0].next,
        [
            "2024-03-01T02:00:00Z",
            "2024-03-04T02:00:00Z",
            "2024-03-05T02:00:00Z"
        ]
    );
}
