//! The leaderboard: rows recorded when a run of a workflow with a `leaderboard:` section ends
//! (by the daemon, and by `tuna run` / `tuna resume`), and the board built from them (latest score per suite, model and metric, the change since the
//! previous night, regressions beyond a threshold). Higher scores are better.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{
    DAEMON_FORMAT_MAJOR, LeaderRow, RunRecord, StepRecord, Store, StoreError, now_ms,
};

/// One line of the board.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BoardEntry {
    pub suite: String,
    pub model: String,
    pub metric: String,
    pub night: String,
    pub value: f64,
    pub run: String,
    pub previous_night: Option<String>,
    pub previous: Option<f64>,
    pub delta: Option<f64>,
    /// The score fell by more than the threshold since the previous night.
    pub regression: bool,
}

/// The board and each metric's history (for trend charts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Board {
    pub threshold: f64,
    pub entries: Vec<BoardEntry>,
    /// Every row, by suite, model, metric, night.
    pub history: Vec<LeaderRow>,
}

/// The default regression threshold (absolute drop in score).
pub const DEFAULT_THRESHOLD: f64 = 0.01;

impl Board {
    pub fn build(rows: Vec<LeaderRow>, threshold: f64) -> Board {
        let mut series: BTreeMap<(String, String, String), Vec<&LeaderRow>> = BTreeMap::new();
        for r in &rows {
            series
                .entry((r.suite.clone(), r.model.clone(), r.metric.clone()))
                .or_default()
                .push(r);
        }
        let mut entries = Vec::new();
        for ((suite, model, metric), mut rs) in series {
            rs.sort_by(|a, b| a.night.cmp(&b.night));
            let last = rs[rs.len() - 1];
            let prev = rs.len().checked_sub(2).map(|i| rs[i]);
            let delta = prev.map(|p| last.value - p.value);
            entries.push(BoardEntry {
                suite,
                model,
                metric,
                night: last.night.clone(),
                value: last.value,
                run: last.run.clone(),
                previous_night: prev.map(|p| p.night.clone()),
                previous: prev.map(|p| p.value),
                delta,
                regression: delta.is_some_and(|d| d < -threshold),
            });
        }
        Board {
            threshold,
            entries,
            history: rows,
        }
    }

    pub fn load(store: &Store, threshold: f64) -> Result<Board, StoreError> {
        Ok(Board::build(store.leader_rows()?, threshold))
    }

    /// CSV with a header line.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("suite,model,metric,night,value,previous,delta,regression,run\n");
        for e in &self.entries {
            let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                csv(&e.suite),
                csv(&e.model),
                csv(&e.metric),
                e.night,
                e.value,
                opt(e.previous),
                opt(e.delta),
                e.regression,
                e.run
            ));
        }
        s
    }
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The rows a finished run adds: for each `leaderboard:` entry whose step passed (or was
/// cached), the listed metrics that step wrote. Nothing for a workflow without `leaderboard:`.
/// The same run always yields the same rows (keys and values), so recording it again changes
/// nothing.
pub fn rows_for_run(run: &RunRecord, steps: &[StepRecord]) -> Vec<LeaderRow> {
    let Ok(dag) = crate::workflow::load_str(&run.workflow_path, &run.workflow_text) else {
        return Vec::new();
    };
    let wf = dag.workflow();
    if wf.leaderboard.is_empty() {
        return Vec::new();
    }
    let mut params: BTreeMap<String, String> = wf
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.extend(run.params.clone());
    let night = night_of(run);
    let recorded_at = now_ms();
    let mut rows = Vec::new();
    for lb in &wf.leaderboard {
        let Some(step) = steps
            .iter()
            .find(|s| s.step == lb.step && s.status.is_done())
        else {
            continue;
        };
        let model = lb.model.render(
            |r| match r {
                crate::workflow::Ref::Param(p) => params.get(p).cloned().unwrap_or_default(),
                _ => String::new(),
            },
            |s| s.to_string(),
        );
        let suite = lb.suite.clone().unwrap_or_else(|| wf.name.clone());
        rows.extend(lb.metrics.iter().filter_map(|m| {
            step.metrics.get(m).map(|v| LeaderRow {
                format: DAEMON_FORMAT_MAJOR,
                suite: suite.clone(),
                model: model.clone(),
                metric: m.clone(),
                night: night.clone(),
                value: *v,
                run: run.id.clone(),
                recorded_at,
            })
        }));
    }
    rows
}

/// The night a run belongs to: the date of its scheduled time (in the schedule's zone), else
/// the UTC date the run was created (a resumed run keeps its night). A `night` param overrides
/// both (backfills).
pub fn night_of(run: &RunRecord) -> String {
    if let Some(n) = run.params.get("night") {
        return n.clone();
    }
    if let Some(t) = &run.scheduled_time {
        return t.chars().take(10).collect();
    }
    chrono::DateTime::from_timestamp_millis(run.created_at as i64)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Records a finished run's rows; how many.
pub fn record_run(store: &Store, run_id: &str) -> Result<usize, StoreError> {
    let Some(run) = store.run(run_id)? else {
        return Ok(0);
    };
    let rows = rows_for_run(&run, &store.steps(run_id)?);
    for r in &rows {
        store.put_leader_row(r)?;
    }
    store.flush()?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
