//! [`Daemon`]: the engine shared by every run the daemon drives, submissions, resume and
//! cancel, the scheduler's launcher, and leaderboard recording when a run ends.
//!
//! Each run's dispatcher is its own tokio task holding an `Arc<Engine>`; the engine's pool is
//! shared (behind its mutex), so runs compete fairly for runner slots.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::names::safe_file_name;
use super::scheduler::{Launcher, Scheduler};
use super::upload::Uploads;
use crate::engine::{Control, Engine, EngineError, RunOptions};
use crate::project::{Manifest, ProjectError, Snapshot, Snapshots};
use crate::store::{
    DAEMON_FORMAT_MAJOR, IdempotencyRecord, RunStatus, ScheduleRecord, SnapshotRef, StoreError,
};

/// A workflow sent to the daemon.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Submission {
    /// The workflow file's text (YAML).
    pub workflow: String,
    /// Param overrides.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The file's name, for diagnostics (only its last component is used).
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub no_cache: bool,
    /// Steps at once (default: cores).
    #[serde(default)]
    pub jobs: Option<usize>,
    /// The project files the workflow reads (their blobs uploaded first); none for a
    /// workflow that reads no files.
    #[serde(default)]
    pub project: Option<Manifest>,
}

/// What a submission became.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Submitted {
    /// A run started.
    Run { id: String, workflow: String },
    /// A workflow with `schedule:` was registered; it runs at its fire times.
    Schedule {
        name: String,
        next: Vec<String>,
        /// The project snapshot its fires run in.
        snapshot: SnapshotRef,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The workflow does not validate: `LoadError::to_json()`.
    #[error("the workflow does not validate")]
    Invalid(serde_json::Value),
    /// Params, placement or inputs refused before anything ran.
    #[error("{0}")]
    Refused(String),
    #[error("run `{0}` not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The project files were refused (or could not be stored).
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// tuna could not do it: the artifact store or a runner failed (500).
    #[error("{0}")]
    Failed(String),
}

impl From<EngineError> for DaemonError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => DaemonError::Refused(m),
            EngineError::NoSuchRun(r) => DaemonError::NotFound(r),
            e @ EngineError::NoSuchStep { .. } => DaemonError::Refused(e.to_string()),
            EngineError::Busy(r) => DaemonError::Conflict(format!("run `{r}` is still running")),
            EngineError::Store(s) => DaemonError::Store(s),
            EngineError::Io(io) => DaemonError::Io(io),
            e @ (EngineError::Artifacts(_) | EngineError::Runner(_)) => {
                DaemonError::Failed(e.to_string())
            }
        }
    }
}

pub struct Daemon {
    pub engine: Arc<Engine>,
    pub scheduler: Scheduler,
    /// Submissions' project folders, laid out from the store.
    pub snapshots: Snapshots,
    /// Blob uploads: the limits, and what came in.
    pub uploads: Uploads,
    /// Runs this process drives now → the schedule that fired them, if any.
    driving: Mutex<HashMap<String, Option<String>>>,
    /// Serializes run creation, so two submissions never draw the same fresh run id.
    creating: Mutex<()>,
    rt: tokio::runtime::Handle,
}

impl Daemon {
    pub fn new(
        engine: Arc<Engine>,
        scheduler: Scheduler,
        uploads: Uploads,
        rt: tokio::runtime::Handle,
    ) -> Daemon {
        Daemon {
            snapshots: Snapshots::new(&engine.home.root, engine.cas.clone()),
            uploads,
            engine,
            scheduler,
            driving: Mutex::new(HashMap::new()),
            creating: Mutex::new(()),
            rt,
        }
    }

    /// Validates and stores a submitted workflow: a run starts, or (for a file with
    /// `schedule:`) the schedule is registered.
    /// `schedule_only`: refuse a workflow without `schedule:` (`tuna schedule add`).
    pub fn submit_as(
        self: &Arc<Self>,
        sub: &Submission,
        schedule_only: bool,
    ) -> Result<Submitted, DaemonError> {
        self.submit_once(sub, schedule_only, None)
    }

    /// [`Daemon::submit_as`] with an `Idempotency-Key`: the first submission under a key
    /// creates its run; a retry (after a lost answer, or a daemon killed mid-request) gets
    /// that same run, never a second one; another submission under the key is refused.
    pub fn submit_once(
        self: &Arc<Self>,
        sub: &Submission,
        schedule_only: bool,
        key: Option<&str>,
    ) -> Result<Submitted, DaemonError> {
        let file_name = safe_file_name(sub.file.as_deref().unwrap_or("workflow.yaml"));
        let snap = self.snapshots.prepare(
            &file_name,
            &sub.workflow,
            sub.project.as_ref(),
            &self.uploads.limits,
        )?;
        let path = snap.dir.join(&file_name);
        let dag = crate::dag::load_str(&path, &sub.workflow).map_err(|e| {
            let mut json = e.to_json();
            for d in json.as_array_mut().into_iter().flatten() {
                d["file"] = serde_json::Value::String(file_name.clone());
            }
            DaemonError::Invalid(json)
        })?;
        let wf = dag.workflow();
        if schedule_only && wf.schedule.is_none() {
            return Err(DaemonError::Refused(format!(
                "workflow `{}` has no `schedule:` section; submit it as a run instead",
                wf.name
            )));
        }
        if wf.schedule.is_some() {
            let params =
                crate::engine::merged_params(wf, &sub.params).map_err(DaemonError::Refused)?;
            // Missing files and unplaceable steps are refused now, not at the first fire.
            self.engine.preflight(&dag, &params)?;
            let rec = self
                .scheduler
                .register(
                    wf,
                    &sub.workflow,
                    &file_name,
                    &sub.params,
                    snapshot_ref(&snap),
                )
                .map_err(DaemonError::Refused)?;
            let next = self
                .scheduler
                .list(3)?
                .into_iter()
                .find(|v| v.name == rec.name)
                .map(|v| v.next)
                .unwrap_or_default();
            return Ok(Submitted::Schedule {
                name: rec.name,
                next,
                snapshot: snapshot_ref(&snap),
            });
        }
        let opts = RunOptions {
            jobs: sub.jobs.unwrap_or(0),
            no_cache: sub.no_cache,
            ..RunOptions::default()
        };
        // A cluster that lacks a GPU type its steps may get, or a runner whose artifact store
        // cannot be used, is refused now (this runs on a blocking thread of the daemon's
        // runtime, which the checks' requests use).
        let checks = async {
            self.engine.check_runner_gpus(&dag).await?;
            self.engine.check_runner_stores(&dag).await
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt.block_on(checks)?,
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(checks)?,
        }
        let id = {
            let _one = self.creating.lock().expect("creating");
            let mut opts = opts;
            if let Some(key) = key {
                let digest = blake3::hash(&serde_json::to_vec(sub).unwrap_or_default())
                    .to_hex()
                    .to_string();
                let store = &self.engine.store;
                match store.idempotent(key)? {
                    Some(r) if r.digest != digest => {
                        return Err(DaemonError::Conflict(format!(
                            "Idempotency-Key `{key}` was used for another submission (run {})",
                            r.run_id
                        )));
                    }
                    Some(r) if store.run(&r.run_id)?.is_some() => {
                        return Ok(Submitted::Run {
                            id: r.run_id,
                            workflow: wf.name.clone(),
                        });
                    }
                    // Recorded, but the daemon stopped before the run was: make it now.
                    Some(r) => opts.run_id = Some(r.run_id),
                    None => {
                        let id = self.engine.fresh_run_id()?;
                        // Written before the run's records, so whatever a crash keeps of
                        // them, a retry finds this id.
                        store.put_idempotent(
                            key,
                            &IdempotencyRecord {
                                format: DAEMON_FORMAT_MAJOR,
                                run_id: id.clone(),
                                digest,
                                created_at: crate::store::now_ms(),
                            },
                        )?;
                        opts.run_id = Some(id);
                    }
                }
            }
            self.engine
                .create_run(&dag, &sub.workflow, &sub.params, &opts)?
        };
        self.drive(&id, false, None);
        Ok(Submitted::Run {
            id,
            workflow: wf.name.clone(),
        })
    }

    /// The project folder a schedule's fires run in: its snapshot, laid out again if it is
    /// gone; for a schedule registered before submissions carried files, its workflow alone.
    fn schedule_dir(&self, s: &ScheduleRecord) -> Result<PathBuf, DaemonError> {
        if let Some(snap) = &s.snapshot {
            let digest = snap.digest.parse().map_err(|e| {
                DaemonError::Refused(format!("schedule `{}`: its snapshot: {e}", s.name))
            })?;
            return Ok(self.snapshots.lay_out(&digest)?);
        }
        let snap =
            self.snapshots
                .prepare(&s.file_name, &s.workflow_text, None, &self.uploads.limits)?;
        Ok(snap.dir)
    }

    /// Starts driving a run in its own task; records leaderboard rows when it ends (the
    /// daemon's tracker exports it to MLflow while it runs, see `cli/serve.rs`).
    pub fn drive(self: &Arc<Self>, id: &str, resumed: bool, schedule: Option<String>) {
        self.driving
            .lock()
            .expect("driving")
            .insert(id.to_string(), schedule);
        let me = self.clone();
        let id = id.to_string();
        self.rt.spawn(async move {
            let result = me.engine.drive(&id, resumed).await;
            match result {
                Ok(status) => tracing::info!(run = %id, status = ?status, "run ended"),
                Err(e) => tracing::error!(run = %id, "run stopped: {e}"),
            }
            me.driving.lock().expect("driving").remove(&id);
        });
    }

    pub fn is_driving(&self, id: &str) -> bool {
        self.driving.lock().expect("driving").contains_key(id)
    }

    /// How many runs this daemon drives now.
    pub fn driving_count(&self) -> usize {
        self.driving.lock().expect("driving").len()
    }

    /// Resumes a failed, cancelled or interrupted run.
    pub fn resume(self: &Arc<Self>, id: &str) -> Result<(), DaemonError> {
        // A run that passed says so even while its task is still finishing (recording its
        // leaderboard rows): it is never resumable, whatever the timing.
        if let Some(run) = self.engine.store.run(id)?
            && run.status == RunStatus::Passed
        {
            return Err(DaemonError::Refused(format!(
                "run `{id}` already passed; nothing to resume"
            )));
        }
        if self.is_driving(id) {
            return Err(DaemonError::Conflict(format!(
                "run `{id}` is still running"
            )));
        }
        let rec = self.engine.prepare_resume(id)?;
        let schedule = rec.scheduled_time.as_ref().map(|_| rec.workflow.clone());
        self.drive(id, true, schedule);
        Ok(())
    }

    /// Asks a running run to stop; it stays resumable.
    pub fn cancel(&self, id: &str) -> Result<(), DaemonError> {
        let run = self
            .engine
            .store
            .run(id)?
            .ok_or_else(|| DaemonError::NotFound(id.to_string()))?;
        if self.engine.control(id, Control::Cancel) {
            return Ok(());
        }
        Err(DaemonError::Conflict(format!(
            "run `{id}` is not running (it is {})",
            run.status.as_str()
        )))
    }

    /// On start: every run the store says is running (the daemon stopped while it ran) is
    /// resumed, adopting steps that still run. The runs resumed.
    pub fn resume_interrupted(self: &Arc<Self>) -> Result<Vec<String>, DaemonError> {
        let mut out = Vec::new();
        for run in self.engine.store.runs()? {
            if run.status != RunStatus::Running {
                continue;
            }
            self.engine.prepare_resume(&run.id)?;
            let schedule = run.scheduled_time.as_ref().map(|_| run.workflow.clone());
            self.drive(&run.id, true, schedule);
            out.push(run.id);
        }
        Ok(out)
    }

    /// The workflow text file a run's diagnostics name (for the API's run view).
    pub fn workflow_path(&self, id: &str) -> Result<Option<PathBuf>, StoreError> {
        Ok(self.engine.store.run(id)?.map(|r| r.workflow_path))
    }

    pub fn home_root(&self) -> &Path {
        &self.engine.home.root
    }
}

impl Launcher for Arc<Daemon> {
    fn active(&self, schedule: &str) -> Vec<String> {
        self.driving
            .lock()
            .expect("driving")
            .iter()
            .filter(|(_, s)| s.as_deref() == Some(schedule))
            .map(|(r, _)| r.clone())
            .collect()
    }

    fn cancel(&self, run: &str) {
        self.engine.control(run, Control::Cancel);
    }

    fn start(&self, s: &ScheduleRecord, scheduled_time: &str) -> Result<String, String> {
        let path = self
            .schedule_dir(s)
            .map_err(|e| e.to_string())?
            .join(&s.file_name);
        let dag = crate::dag::load_str(&path, &s.workflow_text).map_err(|e| e.render_plain())?;
        let opts = RunOptions {
            scheduled_time: Some(scheduled_time.to_string()),
            ..RunOptions::default()
        };
        let id = {
            let _one = self.creating.lock().expect("creating");
            self.engine
                .create_run(&dag, &s.workflow_text, &s.params, &opts)
                .map_err(|e| e.to_string())?
        };
        self.drive(&id, false, Some(s.name.clone()));
        Ok(id)
    }

    fn find(&self, schedule: &str, scheduled_time: &str) -> Option<String> {
        let runs = self.engine.store.runs().ok()?;
        runs.into_iter()
            .find(|r| r.workflow == schedule && r.scheduled_time.as_deref() == Some(scheduled_time))
            .map(|r| r.id)
    }
}

fn snapshot_ref(s: &Snapshot) -> SnapshotRef {
    SnapshotRef {
        digest: s.digest.to_string(),
        files: s.files,
    }
}
