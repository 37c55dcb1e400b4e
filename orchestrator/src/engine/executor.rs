//! An executor owns one attempt: bring the upstream outputs it needs from the runners that keep
//! them, launch, watch, and on success collect the declared outputs into the artifact store
//! (or record where the runner kept them) and read the metrics file. It reports to the
//! dispatcher by events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tuna_runners::{Job, KeptOutputs, Runner};

use super::artifacts::{self, Prep};
use super::attempt_files::AttemptFiles;
use super::events::{Collected, Event};
use crate::cas::Cas;
use crate::store::Location;

pub fn spawn(
    runner: Arc<dyn Runner>,
    cas: Arc<Cas>,
    job: Job,
    outputs: Vec<String>,
    preps: Vec<Prep>,
    tx: UnboundedSender<Event>,
) {
    tokio::spawn(async move {
        let (step, attempt) = (job.step.clone(), job.attempt);
        if let Err(e) = before_launch(&job, preps, &cas, &runner).await {
            let _ = tx.send(Event::Finished {
                step,
                attempt,
                result: Err(e),
                collected: None,
            });
            return;
        }
        let handle = match runner.launch(&job).await {
            Ok(h) => h,
            Err(e) => {
                let _ = tx.send(Event::Finished {
                    step,
                    attempt,
                    result: Err(e.to_string()),
                    collected: None,
                });
                return;
            }
        };
        let _ = tx.send(Event::Launched {
            step: step.clone(),
            attempt,
            handle: handle.clone(),
        });
        let result = runner.watch(&handle).await.map_err(|e| e.to_string());
        let collected = match &result {
            // Without declared outputs there are two small files to look for: done here,
            // rather than paying a hand-off to a blocking thread on every short step.
            Ok(o) if o.success() && outputs.is_empty() => Some(collect(
                &cas,
                &job.attempt_dir,
                &metrics_file(&job),
                &outputs,
            )),
            Ok(o) if o.success() => {
                let (dir, metrics) = (job.attempt_dir.clone(), metrics_file(&job));
                let c =
                    tokio::task::spawn_blocking(move || collect(&cas, &dir, &metrics, &outputs))
                        .await
                        .unwrap_or_else(|e| Err(format!("collecting outputs: {e}")));
                Some(c)
            }
            _ => None,
        };
        let _ = tx.send(Event::Finished {
            step,
            attempt,
            result,
            collected,
        });
    });
}

/// Brings the upstream outputs the job needs from the runners that keep them (the runner's
/// launch makes the attempt folder).
async fn before_launch(
    job: &Job,
    preps: Vec<Prep>,
    cas: &Arc<Cas>,
    runner: &Arc<dyn Runner>,
) -> Result<(), String> {
    if preps.is_empty() {
        return Ok(());
    }
    let (cas, target) = (cas.clone(), runner.clone());
    let bytes = tokio::task::spawn_blocking(move || artifacts::prepare(&preps, &cas, &*target))
        .await
        .unwrap_or_else(|e| Err(format!("moving upstream outputs: {e}")))?;
    tracing::debug!(step = %job.step, attempt = job.attempt, bytes, "upstream outputs in place");
    Ok(())
}

/// Where the job's `$TUNA_METRICS` is on this machine (a remote runner brings it back into
/// the attempt folder).
fn metrics_file(job: &Job) -> PathBuf {
    AttemptFiles::new(&job.attempt_dir, job.workdir.is_none()).metrics
}

/// Puts each declared output of the attempt's work folder into the store (or records the
/// runner that kept it, per `kept.json`), reads metrics.
pub fn collect(
    cas: &Cas,
    attempt_dir: &Path,
    metrics: &Path,
    outputs: &[String],
) -> Result<Collected, String> {
    let work = attempt_dir.join("work");
    let mut digests = BTreeMap::new();
    let mut locations = BTreeMap::new();
    // Only a remote runner keeps outputs, and only declared ones.
    let kept = if outputs.is_empty() {
        KeptOutputs::default()
    } else {
        KeptOutputs::read(attempt_dir)
            .map_err(|e| format!("reading what the runner kept: {e}"))?
            .unwrap_or_default()
    };
    for out in outputs {
        if let Some(k) = kept.outputs.get(out) {
            if out.ends_with('/') != k.dir {
                let want = if k.dir { "a file" } else { "a folder" };
                return Err(format!(
                    "declared output `{out}` should be {want} (runner `{}` kept it)",
                    kept.runner
                ));
            }
            let d = artifacts::record(cas, k)
                .map_err(|e| format!("recording output `{out}` kept on the runner: {e}"))?;
            digests.insert(out.clone(), d);
            locations.insert(
                out.clone(),
                Location::Runner {
                    name: kept.runner.clone(),
                },
            );
            continue;
        }
        let path = work.join(out.trim_end_matches('/'));
        if path.symlink_metadata().is_err() {
            return Err(format!(
                "declared output `{out}` was not produced ({} does not exist)",
                path.display()
            ));
        }
        if out.ends_with('/') != path.is_dir() {
            let want = if out.ends_with('/') {
                "a folder"
            } else {
                "a file"
            };
            return Err(format!(
                "declared output `{out}` should be {want} ({})",
                path.display()
            ));
        }
        let d = cas
            .put(&path, &work)
            .map_err(|e| format!("storing output `{out}`: {e}"))?;
        digests.insert(out.clone(), d);
        locations.insert(out.clone(), Location::Local);
    }
    let metrics = read_metrics(metrics)?;
    Ok(Collected {
        outputs: digests,
        locations,
        outputs_dir: work,
        metrics,
    })
}

/// `$TUNA_METRICS`: a JSON object; numbers (and booleans as 0/1) are kept.
pub fn read_metrics(path: &Path) -> Result<BTreeMap<String, f64>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("$TUNA_METRICS ({}) is not valid JSON: {e}", path.display()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| format!("$TUNA_METRICS ({}) must hold a JSON object", path.display()))?;
    Ok(obj
        .iter()
        .filter_map(|(k, v)| {
            let n = v
                .as_f64()
                .or_else(|| v.as_bool().map(|b| if b { 1.0 } else { 0.0 }))?;
            Some((k.clone(), n))
        })
        .collect())
}
