//! Garbage collection on the runners' machines. A blob in a host's store stays while a kept
//! record (a retained run's step, or a cache entry) says one of its outputs is kept on that
//! runner and the blob is the output or one of its files (a folder's files come from its
//! tree manifest, which is in the local store). An attempt folder `runs/RUN/STEP/N` there
//! goes when its run was dropped (now, or earlier: a run no record names and older than this
//! gc), or when a retained step has a later attempt, as on this machine.
//!
//! A host where any step is launching or running is skipped whole (reported as busy): its
//! job may be reading blobs no record names yet, or settling outputs into the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tuna_runners::{BlobError, RemoteAttempt, Runner};

use super::artifacts;
use crate::cas::{Cas, Digest};
use crate::store::{Location, StepRecord};

/// How long each host gets to answer before it is reported unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// What gc found to keep, per runner.
#[derive(Debug, Default)]
pub(crate) struct References {
    /// Runner → digests of the outputs kept records say it keeps.
    kept: HashMap<String, Vec<Digest>>,
    /// (run, step) → the last attempt of each step of a retained run.
    last_attempt: HashMap<(String, String), u32>,
    /// Runner → `RUN/STEP` of steps launching or running there.
    busy: HashMap<String, Vec<String>>,
    retained: HashSet<String>,
    dropped: HashSet<String>,
    /// A run id taken before the records were read.
    cutoff: String,
}

impl References {
    pub fn new(cutoff: &str) -> References {
        References {
            cutoff: cutoff.to_owned(),
            ..References::default()
        }
    }

    pub fn retain_run(&mut self, run: &str) {
        self.retained.insert(run.to_owned());
    }

    pub fn drop_runs(&mut self, runs: &[String]) {
        self.dropped.extend(runs.iter().cloned());
    }

    /// A retained run's step: its kept outputs, its last attempt, whether it is live.
    pub fn step(&mut self, rec: &StepRecord) {
        self.outputs(&rec.outputs, &rec.locations);
        if let Some(last) = rec.attempts.last() {
            self.last_attempt
                .insert((rec.run.clone(), rec.step.clone()), last.n);
            if rec.status.is_active() {
                self.busy
                    .entry(last.runner.clone())
                    .or_default()
                    .push(format!("{}/{}", rec.run, rec.step));
            }
        }
    }

    /// Outputs a kept record names.
    pub fn outputs(
        &mut self,
        outputs: &BTreeMap<String, Digest>,
        locations: &BTreeMap<String, Location>,
    ) {
        for (output, digest) in outputs {
            if let Some(runner) = Location::of(locations, output).runner() {
                self.kept
                    .entry(runner.to_owned())
                    .or_default()
                    .push(*digest);
            }
        }
    }

    /// Whether the attempt folder `a` on a host is no longer needed.
    fn drops_attempt(&self, a: &RemoteAttempt) -> bool {
        if self.retained.contains(&a.run) {
            let last = self.last_attempt.get(&(a.run.clone(), a.step.clone()));
            return match (last, a.attempt.parse::<u32>()) {
                (Some(last), Ok(n)) => n < *last,
                _ => false,
            };
        }
        // Compared by their time (to the second): one from this very second may be new.
        self.dropped.contains(&a.run)
            || (is_run_id(&a.run) && is_run_id(&self.cutoff) && a.run[..15] < self.cutoff[..15])
    }
}

/// Whether `s` is shaped like a run id (`YYYYMMDD-HHMMSS-xxxx`).
fn is_run_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b[8] == b'-'
        && b[15] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[16..].iter().all(u8::is_ascii_hexdigit)
}

/// How gc went on one host.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    /// Cleaned (or, in a dry run, looked at).
    Cleaned,
    /// It did not answer in time; nothing was deleted.
    Unreachable,
    /// A step is launching or running there; nothing was deleted.
    Busy,
    /// Something went wrong there (a refusal, a missing manifest); see `reason`.
    Failed,
}

/// What gc did (or, in a dry run, would do) on one runner's machine.
#[derive(Debug, Clone, Serialize)]
pub struct HostGc {
    pub runner: String,
    pub state: HostState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub attempt_dirs_removed: usize,
    /// The blobs deleted (or to delete), by name.
    pub blobs: Vec<String>,
    /// The attempt folders deleted (or to delete), `RUN/STEP/ATTEMPT` under `WORKDIR/runs`.
    pub attempt_dirs: Vec<String>,
}

impl HostGc {
    fn new(runner: &str, state: HostState, reason: Option<String>) -> HostGc {
        HostGc {
            runner: runner.to_owned(),
            state,
            reason,
            blobs_removed: 0,
            bytes_freed: 0,
            attempt_dirs_removed: 0,
            blobs: Vec::new(),
            attempt_dirs: Vec::new(),
        }
    }
}

/// Cleans every host of `runners` at once; one report each, in the same order.
pub(crate) fn clean(
    cas: &Cas,
    runners: &[Arc<dyn Runner>],
    refs: &References,
    dry_run: bool,
) -> Vec<HostGc> {
    std::thread::scope(|s| {
        let tasks: Vec<_> = runners
            .iter()
            .map(|r| s.spawn(move || clean_host(cas, r.as_ref(), refs, dry_run)))
            .collect();
        tasks
            .into_iter()
            .zip(runners)
            .map(|(t, r)| {
                t.join().unwrap_or_else(|_| {
                    HostGc::new(r.name(), HostState::Failed, Some("gc panicked".into()))
                })
            })
            .collect()
    })
}

fn clean_host(cas: &Cas, runner: &dyn Runner, refs: &References, dry_run: bool) -> HostGc {
    let name = runner.name();
    let failed = |state: HostState, reason: String| HostGc::new(name, state, Some(reason));
    if let Some(steps) = refs.busy.get(name) {
        return failed(
            HostState::Busy,
            format!(
                "steps are launching or running there ({}); nothing deleted",
                steps.join(", ")
            ),
        );
    }
    let (Some(store), Some(folders)) = (runner.blob_store(), runner.attempt_folders()) else {
        return failed(HostState::Failed, "it keeps nothing on its machine".into());
    };
    let mut referenced = HashSet::new();
    for digest in refs.kept.get(name).into_iter().flatten() {
        match artifacts::listing(cas, digest) {
            Ok(l) => referenced.extend(l.files.into_iter().map(|f| f.hex)),
            Err(e) => {
                return failed(
                    HostState::Failed,
                    format!("cannot list the files of kept output {digest}: {e}; nothing deleted"),
                );
            }
        }
    }
    let looked = store.list(REACH_TIMEOUT).and_then(|blobs| {
        folders
            .attempts(REACH_TIMEOUT)
            .map(|attempts| (blobs, attempts))
    });
    let (blobs, attempts) = match looked {
        Ok(found) => found,
        Err(e) => return from_error(name, e),
    };
    let doomed: Vec<_> = blobs
        .into_iter()
        .filter(|b| !referenced.contains(&b.hex))
        .collect();
    let old: Vec<RemoteAttempt> = attempts
        .into_iter()
        .filter(|a| refs.drops_attempt(a))
        .collect();
    let mut report = HostGc::new(name, HostState::Cleaned, None);
    report.blobs = doomed.iter().map(|b| b.hex.clone()).collect();
    report.attempt_dirs = old.iter().map(RemoteAttempt::rel).collect();
    if dry_run {
        report.blobs_removed = doomed.len() as u64;
        report.bytes_freed = doomed.iter().map(|b| b.size).sum();
        report.attempt_dirs_removed = old.len();
        return report;
    }
    match folders.remove_attempts(&old, REACH_TIMEOUT) {
        Ok(n) => report.attempt_dirs_removed = n,
        Err(e) => return from_error(name, e),
    }
    match store.remove(&report.blobs, REACH_TIMEOUT) {
        Ok(done) => {
            report.blobs_removed = done.blobs;
            report.bytes_freed = done.bytes;
        }
        Err(e) => {
            let mut r = from_error(name, e);
            r.attempt_dirs_removed = report.attempt_dirs_removed;
            r.attempt_dirs = report.attempt_dirs;
            return r;
        }
    }
    report
}

fn from_error(name: &str, e: BlobError) -> HostGc {
    let state = match e {
        BlobError::Unreachable(_) => HostState::Unreachable,
        _ => HostState::Failed,
    };
    HostGc::new(name, state, Some(e.to_string()))
}

#[cfg(test)]
mod tests {
    use tuna_runners::RemoteAttempt;

    use super::{References, is_run_id};

    fn at(run: &str, step: &str, n: &str) -> RemoteAttempt {
        RemoteAttempt {
            run: run.into(),
            step: step.into(),
            attempt: n.into(),
        }
    }

    #[test]
    fn attempt_folders_go_with_their_run_or_a_later_attempt() {
        let (old, kept, dropped) = (
            "20240101-000000-aaaa",
            "20240102-000000-bbbb",
            "20240103-000000-cccc",
        );
        let mut refs = References::new("20240105-000000-0000");
        refs.retain_run(kept);
        refs.drop_runs(&[dropped.to_owned()]);
        refs.last_attempt
            .insert((kept.to_owned(), "train".to_owned()), 2);
        assert!(refs.drops_attempt(&at(kept, "train", "1")));
        assert!(!refs.drops_attempt(&at(kept, "train", "2")));
        // A later attempt than the record knows, or a step it does not name: left alone.
        assert!(!refs.drops_attempt(&at(kept, "train", "3")));
        assert!(!refs.drops_attempt(&at(kept, "eval", "1")));
        assert!(refs.drops_attempt(&at(dropped, "train", "1")));
        // Dropped by an earlier gc: older than this one.
        assert!(refs.drops_attempt(&at(old, "train", "1")));
        // Started after this gc read the records, or not a run of tuna's.
        assert!(!refs.drops_attempt(&at("20240106-000000-dddd", "train", "1")));
        assert!(!refs.drops_attempt(&at("20240105-000000-ffff", "train", "1")));
        assert!(!refs.drops_attempt(&at("scratch", "x", "1")));
    }

    #[test]
    fn run_ids_are_recognized() {
        assert!(is_run_id(&crate::engine::run_id::new_run_id()));
        assert!(!is_run_id("20240101-000000-zzzz"));
        assert!(!is_run_id("2024010-0000000-aaaa"));
    }
}
