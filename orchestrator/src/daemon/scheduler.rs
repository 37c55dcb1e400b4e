//! The cron scheduler: registered schedules, and each tick's decisions — which fire times came
//! due, which were missed while the daemon was down (policy `skip | latest | all`), and what a
//! fire does while an earlier run still goes (policy `forbid | allow | replace`).
//!
//! Every fire is recorded in the store under an idempotent id (`WORKFLOW@TIME`) and flushed
//! before its run is created, so a restart or a double tick never starts it twice. A fire
//! claimed but not started (a crash in between) is repaired on start by [`Scheduler::repair`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

use super::clock::Clock;
use super::fire_times::{fires_between, upcoming};
use crate::store::{
    DAEMON_FORMAT_MAJOR, FireRecord, FireState, ScheduleRecord, SnapshotRef, Store, StoreError,
    now_ms,
};
use crate::workflow::{ConcurrencyPolicy, CronSpec, MissedPolicy, Workflow};

/// A fire later than this after its time counts as missed (the daemon was down).
pub const MISSED_GRACE_S: i64 = 60;
/// At most this many past fire times are considered after a long downtime.
const MAX_CATCH_UP: usize = 1000;

/// What the scheduler needs from whoever runs workflows (the daemon; a fake in tests).
pub trait Launcher: Send + Sync {
    /// Runs started by this schedule's fires that are still running.
    fn active(&self, schedule: &str) -> Vec<String>;
    /// Asks a run to stop (concurrency `replace`).
    fn cancel(&self, run: &str);
    /// Creates and starts a run of the schedule's workflow for one fire; the run id.
    fn start(&self, schedule: &ScheduleRecord, scheduled_time: &str) -> Result<String, String>;
    /// A run already created for this fire, if any (repairing a crash between claim and start).
    fn find(&self, schedule: &str, scheduled_time: &str) -> Option<String>;
}

pub struct Scheduler {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
}

/// A schedule as listed: the record and its next fire times.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub missed: MissedPolicy,
    pub concurrency: ConcurrencyPolicy,
    pub params: BTreeMap<String, String>,
    /// The next fire times, RFC 3339 in the schedule's zone.
    pub next: Vec<String>,
    /// The newest fires, newest first.
    pub recent: Vec<FireRecord>,
    /// The project snapshot every fire runs in (see docs/api.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRef>,
}

impl Scheduler {
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>) -> Scheduler {
        Scheduler { store, clock }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Registers (or replaces) the schedule of a validated workflow. A replaced schedule keeps
    /// its cursor, so no fire time is handled twice; a new one starts from now.
    pub fn register(
        &self,
        wf: &Workflow,
        text: &str,
        file_name: &str,
        params: &BTreeMap<String, String>,
        snapshot: SnapshotRef,
    ) -> Result<ScheduleRecord, String> {
        let sched = wf
            .schedule
            .as_ref()
            .ok_or_else(|| format!("workflow `{}` has no `schedule:`", wf.name))?;
        let old = self.store.schedule(&wf.name).map_err(|e| e.to_string())?;
        let rec = ScheduleRecord {
            format: DAEMON_FORMAT_MAJOR,
            name: wf.name.clone(),
            file_name: file_name.to_string(),
            workflow_text: text.to_string(),
            params: params.clone(),
            cron: sched.cron.clone(),
            timezone: sched.timezone.clone(),
            missed: sched.missed,
            concurrency: sched.concurrency,
            cursor_ms: old
                .as_ref()
                .map_or(self.now().timestamp_millis(), |o| o.cursor_ms),
            created_at: old.map_or(now_ms(), |o| o.created_at),
            snapshot: Some(snapshot),
        };
        self.store.put_schedule(&rec).map_err(|e| e.to_string())?;
        self.store.flush().map_err(|e| e.to_string())?;
        Ok(rec)
    }

    pub fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let gone = self.store.remove_schedule(name)?;
        self.store.flush()?;
        Ok(gone)
    }

    /// Every schedule with its next `n` fire times and newest fires.
    pub fn list(&self, n: usize) -> Result<Vec<ScheduleView>, StoreError> {
        let now = self.now();
        let mut out = Vec::new();
        for rec in self.store.schedules()? {
            let (spec, tz) = parsed(&rec);
            let mut recent = self.store.fires(&rec.name)?;
            recent.reverse();
            recent.truncate(10);
            out.push(ScheduleView {
                next: upcoming(&spec, tz, now.max(at_ms(rec.cursor_ms)), n)
                    .into_iter()
                    .map(|t| local_string(t, tz))
                    .collect(),
                name: rec.name,
                cron: rec.cron,
                timezone: rec.timezone,
                missed: rec.missed,
                concurrency: rec.concurrency,
                params: rec.params,
                recent,
                snapshot: rec.snapshot,
            });
        }
        Ok(out)
    }

    /// Handles every fire time that came due since the last tick; the fires decided now.
    pub fn tick(&self, launcher: &dyn Launcher) -> Result<Vec<FireRecord>, StoreError> {
        let now = self.now();
        let mut decided = Vec::new();
        for mut rec in self.store.schedules()? {
            let cursor = at_ms(rec.cursor_ms);
            if now <= cursor {
                continue;
            }
            let (spec, tz) = parsed(&rec);
            let due = fires_between(&spec, tz, cursor, now, MAX_CATCH_UP);
            let late = |t: &DateTime<Utc>| (now - *t).num_seconds() > MISSED_GRACE_S;
            let on_time = due.iter().any(|t| !late(t));
            let last_missed = due.iter().rev().find(|t| late(t)).copied();
            for t in &due {
                let run_it = !late(t)
                    || match rec.missed {
                        MissedPolicy::All => true,
                        MissedPolicy::Latest => !on_time && Some(*t) == last_missed,
                        MissedPolicy::Skip => false,
                    };
                let mut fire = FireRecord {
                    format: DAEMON_FORMAT_MAJOR,
                    id: fire_id(&rec.name, *t),
                    schedule: rec.name.clone(),
                    scheduled_ms: t.timestamp_millis(),
                    scheduled_time: local_string(*t, tz),
                    state: FireState::Claimed,
                    decided_at: now_ms(),
                };
                if !run_it {
                    fire.state = FireState::Skipped {
                        reason: format!(
                            "missed while the daemon was down (missed: {})",
                            policy_word(rec.missed)
                        ),
                    };
                    if self.store.claim_fire(&fire)? {
                        decided.push(fire);
                    }
                    continue;
                }
                if !self.store.claim_fire(&fire)? {
                    continue; // this fire was handled before (a double tick, a restart)
                }
                self.store.flush()?;
                fire.state = self.fire(&rec, &fire, launcher);
                self.store.put_fire(&fire)?;
                self.store.flush()?;
                decided.push(fire);
            }
            rec.cursor_ms = now.timestamp_millis();
            self.store.put_schedule(&rec)?;
        }
        self.store.flush()?;
        Ok(decided)
    }

    /// Starts a claimed fire under the schedule's concurrency policy.
    fn fire(&self, rec: &ScheduleRecord, fire: &FireRecord, launcher: &dyn Launcher) -> FireState {
        let active = launcher.active(&rec.name);
        match rec.concurrency {
            ConcurrencyPolicy::Forbid if !active.is_empty() => {
                return FireState::Skipped {
                    reason: format!(
                        "run {} is still running (concurrency: forbid)",
                        active.join(", ")
                    ),
                };
            }
            ConcurrencyPolicy::Replace => active.iter().for_each(|r| launcher.cancel(r)),
            _ => {}
        }
        match launcher.start(rec, &fire.scheduled_time) {
            Ok(run) => FireState::Started { run },
            Err(e) => FireState::Skipped {
                reason: format!("could not start: {e}"),
            },
        }
    }

    /// Fires claimed before a crash but never marked started: linked to the run a crash left
    /// behind, or started now. The fires repaired.
    pub fn repair(&self, launcher: &dyn Launcher) -> Result<Vec<FireRecord>, StoreError> {
        let mut out = Vec::new();
        for mut fire in self.store.all_fires()? {
            if fire.state != FireState::Claimed {
                continue;
            }
            fire.state = match launcher.find(&fire.schedule, &fire.scheduled_time) {
                Some(run) => FireState::Started { run },
                None => match self.store.schedule(&fire.schedule)? {
                    Some(rec) => self.fire(&rec, &fire, launcher),
                    None => FireState::Skipped {
                        reason: "its schedule was removed".into(),
                    },
                },
            };
            fire.decided_at = now_ms();
            self.store.put_fire(&fire)?;
            self.store.flush()?;
            out.push(fire);
        }
        Ok(out)
    }
}

fn parsed(rec: &ScheduleRecord) -> (CronSpec, Tz) {
    // Both were validated when the workflow was registered; fall back rather than panic.
    let spec = CronSpec::parse(&rec.cron)
        .unwrap_or_else(|_| CronSpec::parse("0 0 1 1 *").expect("fallback line"));
    let tz = rec.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
    (spec, tz)
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn fire_id(schedule: &str, t: DateTime<Utc>) -> String {
    format!(
        "{schedule}@{}",
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

fn local_string(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn policy_word(p: MissedPolicy) -> &'static str {
    match p {
        MissedPolicy::Skip => "skip",
        MissedPolicy::Latest => "latest",
        MissedPolicy::All => "all",
    }
}
