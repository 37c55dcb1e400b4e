//! [`Engine::gc`]: what `tuna gc` drops. Old runs (with `keep`), attempt folders other than
//! each step's last, cache entries of dropped runs, submission snapshots (a daemon's
//! `submissions/`) that no kept run or schedule refers to, every local blob nothing kept refers
//! to, and on each runner that keeps files on its machine, the blobs and attempt folders no kept
//! record needs (see `remote_gc.rs`). A dry run decides the same and deletes nothing.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tuna_runners::Runner;

use super::attempt_files::AttemptFiles;
use super::engine::{Engine, EngineError};
use super::remote_gc::{self, HostGc, References};
use crate::store::RunStatus;

/// What [`Engine::gc`] is asked to do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Keep only the N newest runs (`None`: keep every run).
    pub keep: Option<usize>,
    /// Decide and report, delete nothing.
    pub dry_run: bool,
    pub hosts: GcHosts,
}

/// Which runners' machines are cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcHosts {
    /// Every runner of the inventory that keeps files on its machine.
    All,
    /// These runners (each must be in the inventory and keep files on its machine).
    Named(Vec<String>),
    /// None: only this machine.
    None,
}

/// What [`Engine::gc`] dropped (or, in a dry run, would drop).
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub local: LocalGc,
    /// One per runner machine looked at, in inventory order.
    pub hosts: Vec<HostGc>,
}

/// The part of a [`GcReport`] on this machine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalGc {
    pub runs_removed: Vec<String>,
    pub attempt_dirs_removed: usize,
    pub cache_entries_removed: usize,
    /// Submission snapshots (project folders under `submissions/`) no run or schedule uses.
    pub snapshots_removed: usize,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
}

impl Engine {
    /// Drops what `opts` asks for, here and on the runners' machines. Blocks while it talks to
    /// them (all at once, each bounded by a timeout); a machine that does not answer is
    /// reported in its [`HostGc`] and left as it is.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport, EngineError> {
        let hosts = self.gc_hosts(&opts.hosts)?;
        // Taken before the records are read: a run folder on a host that no record names is
        // dropped only if its id is older than this (a run started meanwhile is not).
        let cutoff = super::run_id::new_run_id();
        let store = &self.store;
        let mut runs = store.runs()?;
        runs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let drop_n = opts.keep.map_or(0, |k| runs.len().saturating_sub(k));
        let dropped: HashSet<String> = runs[..drop_n]
            .iter()
            .filter(|r| r.status != RunStatus::Running)
            .map(|r| r.id.clone())
            .collect();
        let mut refs = References::new(&cutoff);
        let mut live = Vec::new();
        let mut live_keys = HashSet::new();
        // Older attempts: each one's folder (when it has one) and its files in the run's shared
        // folder.
        let mut old_dirs: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
        for r in runs.iter().filter(|r| !dropped.contains(&r.id)) {
            refs.retain_run(&r.id);
            for rec in store.steps(&r.id)? {
                live.extend(rec.outputs.values().cloned());
                live_keys.extend(rec.cache_key.clone());
                refs.step(&rec);
                let n = rec.attempts.len();
                for a in rec.attempts.iter().take(n.saturating_sub(1)) {
                    // A step without a folder of its own left its files in the run's shared
                    // folder: they go with the attempt.
                    let shared = AttemptFiles::new(&a.dir, false);
                    let files: Vec<PathBuf> = [shared.metrics, shared.progress]
                        .into_iter()
                        .filter(|f| f.exists())
                        .collect();
                    if a.dir.exists() || !files.is_empty() {
                        old_dirs.push((a.dir.clone(), files));
                    }
                }
            }
        }
        let mut stale_entries = Vec::new();
        for (key, entry) in store.cache_entries()? {
            if dropped.contains(&entry.run) && !live_keys.contains(&key) {
                stale_entries.push(key);
            } else {
                live.extend(entry.outputs.values().cloned());
                refs.outputs(&entry.outputs, &entry.locations);
            }
        }
        let mut runs_removed: Vec<String> = runs[..drop_n]
            .iter()
            .filter(|r| dropped.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        runs_removed.sort();
        refs.drop_runs(&runs_removed);
        let snapshots = crate::project::gc::plan(
            &self.home.root,
            runs.iter().filter(|r| !dropped.contains(&r.id)),
            &store.schedules()?,
        )?;
        live.extend(snapshots.live.iter().copied());
        let mut local = LocalGc {
            runs_removed,
            cache_entries_removed: stale_entries.len(),
            snapshots_removed: snapshots.unreferenced.len(),
            ..LocalGc::default()
        };
        let cas_error =
            |e: crate::cas::CasError| EngineError::Artifacts(format!("artifact store: {e}"));
        let stats = if opts.dry_run {
            local.attempt_dirs_removed = old_dirs.len();
            self.cas.gc_dry_run(live).map_err(cas_error)?
        } else {
            for id in &local.runs_removed {
                store.delete_run(id)?;
                let _ = std::fs::remove_dir_all(self.home.runs().join(id));
            }
            local.attempt_dirs_removed = old_dirs
                .iter()
                .filter(|(dir, files)| {
                    let files_gone = files.iter().all(|f| std::fs::remove_file(f).is_ok());
                    let dir_gone = !dir.exists() || std::fs::remove_dir_all(dir).is_ok();
                    files_gone && dir_gone
                })
                .count();
            for key in &stale_entries {
                store.remove_cache_entry(key)?;
            }
            store.flush()?;
            for dir in &snapshots.unreferenced {
                crate::project::gc::remove(dir)?;
            }
            let stats = self.cas.gc(live).map_err(cas_error)?;
            crate::project::Aliases::new(self.cas.root()).prune(&self.cas, true)?;
            stats
        };
        local.blobs_removed = stats.removed;
        local.bytes_freed = stats.bytes_freed;
        let hosts = remote_gc::clean(&self.cas, &hosts, &refs, opts.dry_run);
        Ok(GcReport {
            dry_run: opts.dry_run,
            local,
            hosts,
        })
    }

    /// The runners whose machines `which` names, checked against the inventory.
    fn gc_hosts(&self, which: &GcHosts) -> Result<Vec<Arc<dyn Runner>>, EngineError> {
        let pool = self.pool.lock().expect("pool");
        let keeps = |r: &Arc<dyn Runner>| r.blob_store().is_some() && r.attempt_folders().is_some();
        match which {
            GcHosts::None => Ok(Vec::new()),
            GcHosts::All => Ok(pool
                .runners
                .iter()
                .map(|r| r.runner.clone())
                .filter(keeps)
                .collect()),
            GcHosts::Named(names) => {
                let mut out = Vec::new();
                for name in names {
                    let runner = pool
                        .by_name(name)
                        .map(|i| pool.runner(i).runner.clone())
                        .ok_or_else(|| {
                            EngineError::Invalid(format!(
                                "there is no runner `{name}` in the runner inventory"
                            ))
                        })?;
                    if !keeps(&runner) {
                        return Err(EngineError::Invalid(format!(
                            "runner `{name}` keeps nothing on another machine: only ssh \
                             and Ray runners have a store to clean"
                        )));
                    }
                    if !out.iter().any(|r: &Arc<dyn Runner>| r.name() == name) {
                        out.push(runner);
                    }
                }
                Ok(out)
            }
        }
    }
}
