//! The leaderboard's board (latest score, change, regressions), the rows a run adds per
//! `leaderboard:` entry, the night rule, and idempotent recording into a real store.

use super::leaderboard::{Board, night_of, record_run, rows_for_run};
use crate::store::{LeaderRow, RunRecord, StepRecord, Store};

fn row(model: &str, metric: &str, night: &str, value: f64) -> LeaderRow {
    LeaderRow {
        format: 1,
        suite: "s".into(),
        model: model.into(),
        metric: metric.into(),
        night: night.into(),
        value,
        run: format!("r-{night}"),
        recorded_at: 0,
    }
}

#[test]
fn latest_delta_and_regressions() {
    let b = Board::build(
        vec![
            row("m1", "acc", "2024-01-02", 0.50),
            row("m1", "acc", "2024-01-01", 0.60),
            row("m1", "acc", "2024-01-03", 0.55),
            row("m2", "acc", "2024-01-03", 0.70),
            row("m2", "em", "2024-01-02", 0.30),
            row("m2", "em", "2024-01-03", 0.295),
        ],
        0.01,
    );
    let e: Vec<_> = b
        .entries
        .iter()
        .map(|e| (e.model.as_str(), e.metric.as_str(), e.value, e.regression))
        .collect();
    assert_eq!(
        e,
        [
            ("m1", "acc", 0.55, false),
            ("m2", "acc", 0.70, false),
            ("m2", "em", 0.295, false)
        ]
    );
    assert!((b.entries[0].delta.unwrap() - 0.05).abs() < 1e-9);
    assert_eq!(b.entries[1].delta, None);
    let strict = Board::build(
        vec![row("m", "em", "a", 0.3), row("m", "em", "b", 0.28)],
        0.01,
    );
    assert!(strict.entries[0].regression);
    assert!(strict.to_csv().contains("m,em,b,0.28,0.3,"));
}

const LIST: &str = r#"name: ckpts
params:
  family: opt
leaderboard:
  - step: eval-a
    model: "${{ params.family }}-a"
    metrics: [acc, em]
  - step: eval-b
    model: "${{ params.family }}-b"
    metrics: [acc]
    suite: lite
  - step: eval-c
    model: "${{ params.family }}-c"
    metrics: [acc]
steps:
  eval-a: { run: "true" }
  eval-b: { run: "true" }
  eval-c: { run: "true" }
"#;

fn run_record(scheduled: Option<&str>, params: &[(&str, &str)]) -> RunRecord {
    RunRecord {
        format: 1,
        id: "r1".into(),
        workflow: "ckpts".into(),
        workflow_path: "w.yaml".into(),
        workflow_text: LIST.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        status: crate::store::RunStatus::Failed,
        jobs: 1,
        no_cache: false,
        // 2024-03-05T23:30:00Z
        created_at: 1_709_681_400_000,
        ended_at: None,
        scheduled_time: scheduled.map(str::to_string),
    }
}

fn step(name: &str, status: crate::store::StepStatus, metrics: &[(&str, f64)]) -> StepRecord {
    let mut s = StepRecord::new("r1", name);
    s.status = status;
    s.metrics = metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    s
}

#[test]
fn each_entry_whose_step_passed_adds_its_rows() {
    use crate::store::StepStatus::{Cached, Failed, Passed};
    let steps = [
        step(
            "eval-a",
            Passed,
            &[("acc", 0.5), ("em", 0.25), ("loss", 1.0)],
        ),
        step("eval-b", Cached, &[("acc", 0.75)]),
        step("eval-c", Failed, &[("acc", 0.9)]),
    ];
    let rows = rows_for_run(&run_record(None, &[("family", "llama")]), &steps);
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.suite.as_str(),
                r.model.as_str(),
                r.metric.as_str(),
                r.night.as_str(),
                r.value,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ckpts", "llama-a", "acc", "2024-03-05", 0.5),
            ("ckpts", "llama-a", "em", "2024-03-05", 0.25),
            ("lite", "llama-b", "acc", "2024-03-05", 0.75),
        ]
    );
}

#[test]
fn the_night_is_the_scheduled_date_else_the_utc_creation_date() {
    assert_eq!(night_of(&run_record(None, &[])), "2024-03-05");
    let scheduled = run_record(Some("2024-03-06T02:30:00+01:00"), &[]);
    assert_eq!(night_of(&scheduled), "2024-03-06");
    let backfill = run_record(
        Some("2024-03-06T02:30:00+01:00"),
        &[("night", "2024-01-01")],
    );
    assert_eq!(night_of(&backfill), "2024-01-01");
}

#[test]
fn recording_again_doubles_nothing_and_an_older_run_never_overwrites_a_newer_one() {
    use crate::store::StepStatus::Passed;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let put = |id: &str, created_at: u64, acc: f64| {
        let mut run = run_record(None, &[]);
        run.id = id.into();
        run.created_at = created_at;
        store.put_run(&run).unwrap();
        let mut s = step("eval-a", Passed, &[("acc", acc), ("em", 0.25)]);
        s.run = id.into();
        store.put_step(&s).unwrap();
    };
    // Two runs on the same UTC night, r-old created an hour before r-new.
    put("r-old", 1_709_681_400_000 - 3_600_000, 0.5);
    put("r-new", 1_709_681_400_000, 0.75);
    assert_eq!(record_run(&store, "r-new").unwrap(), 2);
    assert_eq!(record_run(&store, "r-new").unwrap(), 2);
    assert_eq!(record_run(&store, "r-old").unwrap(), 0, "newer rows stay");
    let rows = store.leader_rows().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.run == "r-new"));
    assert_eq!(rows.iter().find(|r| r.metric == "acc").unwrap().value, 0.75);
    assert_eq!(record_run(&store, "r-missing").unwrap(), 0);
}
