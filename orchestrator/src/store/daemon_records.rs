//! The daemon's durable records: registered schedules, fires (one per schedule and scheduled
//! time, written before the run starts) and leaderboard rows. Each carries `format` like the
//! engine's records; a newer major format is refused rather than misread.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workflow::{ConcurrencyPolicy, MissedPolicy};

/// Format major of the daemon's records.
pub const DAEMON_FORMAT_MAJOR: u32 = 1;

/// A workflow registered with the daemon's scheduler, keyed by workflow name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduleRecord {
    pub format: u32,
    /// The workflow's name (one schedule per workflow name).
    pub name: String,
    /// File name the workflow was submitted as (diagnostics only).
    pub file_name: String,
    pub workflow_text: String,
    pub params: BTreeMap<String, String>,
    pub cron: String,
    pub timezone: String,
    pub missed: MissedPolicy,
    pub concurrency: ConcurrencyPolicy,
    /// Fire times at or before this instant (unix ms) have been handled.
    pub cursor_ms: i64,
    pub created_at: u64,
    /// The project files it was registered with, which every fire uses (none for schedules
    /// registered before submissions carried their project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRef>,
}

/// A submission snapshot a schedule keeps: the tree of its workflow file and the project
/// files it reads, in the daemon's store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotRef {
    /// `b3tree:HEX`.
    pub digest: String,
    /// Files in it, the workflow file included.
    pub files: usize,
}

/// What became of one fire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum FireState {
    /// Claimed; the run may or may not exist yet (a crash in between is repaired on start).
    Claimed,
    Started {
        run: String,
    },
    Skipped {
        reason: String,
    },
}

/// One fire of a schedule: its id is `WORKFLOW@SCHEDULED-TIME-UTC`, so a restart or a double
/// tick never starts the same fire twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FireRecord {
    pub format: u32,
    pub id: String,
    pub schedule: String,
    /// Unix ms of the scheduled time.
    pub scheduled_ms: i64,
    /// The scheduled time in the schedule's zone (RFC 3339), as `${{ run.scheduled_time }}`.
    pub scheduled_time: String,
    #[serde(flatten)]
    pub state: FireState,
    pub decided_at: u64,
}

/// A submission made with an `Idempotency-Key`: the run it became (its id drawn, and this
/// record written, before the run is created), and a digest of what was submitted, so a retry
/// with the same key gets the same run and a different submission under that key is refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdempotencyRecord {
    pub format: u32,
    pub run_id: String,
    /// blake3 of the submission's JSON.
    pub digest: String,
    pub created_at: u64,
}

/// One leaderboard score: a metric of a model in a suite on a night.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaderRow {
    pub format: u32,
    pub suite: String,
    pub model: String,
    pub metric: String,
    /// `YYYY-MM-DD`.
    pub night: String,
    pub value: f64,
    pub run: String,
    pub recorded_at: u64,
}
