//! The leaderboard: rows recorded when a run of a workflow with a `leaderboard:` section ends
//! (in one place, `Engine::drive`'s end, whoever drives the run: `tuna run`, `tuna resume`,
//! `tuna serve`), and the board built from them (latest score per suite, model and metric, the change since the
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
    let Ok(dag) = crate::dag::load_str(&run.workflow_path, &run.workflow_text) else {
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
pub(crate) fn night_of(run: &RunRecord) -> String {
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

/// Records a finished run's rows; how many were written. Recording the same run again rewrites
/// the same rows. A row of the same suite, model, metric and night from a run created later is
/// kept (resuming an older run of that night does not overwrite a newer run's scores).
pub fn record_run(store: &Store, run_id: &str) -> Result<usize, StoreError> {
    let Some(run) = store.run(run_id)? else {
        return Ok(0);
    };
    let rows = rows_for_run(&run, &store.steps(run_id)?);
    if rows.is_empty() {
        return Ok(0);
    }
    let key = |r: &LeaderRow| {
        (
            r.suite.clone(),
            r.model.clone(),
            r.metric.clone(),
            r.night.clone(),
        )
    };
    let holders: BTreeMap<_, String> = store
        .leader_rows()?
        .into_iter()
        .map(|r| (key(&r), r.run))
        .collect();
    let mut newer: BTreeMap<String, bool> = BTreeMap::new();
    let mut written = 0;
    for r in &rows {
        if let Some(other) = holders.get(&key(r)).filter(|o| **o != run.id) {
            let is_newer = match newer.get(other) {
                Some(b) => *b,
                None => {
                    let b = store
                        .run(other)?
                        .is_some_and(|o| o.created_at > run.created_at);
                    newer.insert(other.clone(), b);
                    b
                }
            };
            if is_newer {
                continue;
            }
        }
        store.put_leader_row(r)?;
        written += 1;
    }
    store.flush()?;
    Ok(written)
}
