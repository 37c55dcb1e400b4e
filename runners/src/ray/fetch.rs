//! Bringing a finished attempt back from the bucket into the local attempt folder: the outputs
//! the wrapper listed in `outputs.json` (checked like the shared folder's listing: plain
//! relative paths, blake3 blobs), each output up to `keep_remote_over` downloaded and checked
//! against its names, each bigger one left in the bucket and listed in `kept.json` (the
//! executor records it by digest and location); then the metrics and the exit record.

use std::collections::BTreeMap;
use std::path::Path;

use super::back::{check_listing, lay_out};
use super::bucket::{self, Bucket};
use super::exec::{EXIT, METRICS, OUTPUTS};
use crate::local::ExitRecord;
use crate::{BlobStore, KeptOutput, KeptOutputs, Outcome, RunnerError};

/// Settles the attempt `bucket` into `local`. Safe to repeat.
pub(crate) fn bring_back(
    bucket: &Bucket,
    runner: &str,
    keep_over: Option<u64>,
    local: &Path,
) -> Result<Outcome, RunnerError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        RunnerError::remote(runner, format!("runner `{runner}`: {what}: {e}"))
    };
    let listed: BTreeMap<String, KeptOutput> = match bucket
        .record(OUTPUTS)
        .map_err(|e| failed(&format!("reading {}", bucket.key(OUTPUTS)), &e))?
    {
        Some(b) => serde_json::from_slice(&b).map_err(|e| failed(&bucket.key(OUTPUTS), &e))?,
        None => BTreeMap::new(),
    };
    check_listing(&listed, &bucket.key(OUTPUTS))?;
    let mut kept = KeptOutputs {
        runner: runner.to_owned(),
        outputs: BTreeMap::new(),
    };
    let work = local.join("work");
    let mut session = None;
    for (out, listing) in &listed {
        if keep_over.is_some_and(|limit| listing.size() > limit) {
            kept.outputs.insert(out.clone(), listing.clone());
            continue;
        }
        let s = match &mut session {
            Some(s) => s,
            None => session.insert(
                bucket
                    .store
                    .session()
                    .map_err(|e| failed("opening a session", &e))?,
            ),
        };
        lay_out(&work, out, listing, &mut |hex, dest, x| {
            bucket::download(s.as_mut(), hex, dest, x).map(|_| ())
        })
        .map_err(|e| failed(&format!("bringing output {out} back"), &e))?;
    }
    if kept.outputs.is_empty() {
        match std::fs::remove_file(local.join(KeptOutputs::FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    } else {
        kept.write(local)?;
    }
    if let Some(metrics) = bucket
        .record(METRICS)
        .map_err(|e| failed(&format!("reading {}", bucket.key(METRICS)), &e))?
    {
        std::fs::write(local.join(METRICS), metrics)?;
    }
    copy_exit(bucket, local);
    Ok(ExitRecord::read(local)
        .ok()
        .flatten()
        .map_or(Outcome::Exited { code: 0 }, |r| r.outcome))
}

/// The wrapper's exit record, beside the local attempt's logs (where `tuna` reads it).
pub(crate) fn copy_exit(bucket: &Bucket, local: &Path) {
    if !local.join(EXIT).exists()
        && let Ok(Some(bytes)) = bucket.record(EXIT)
    {
        let _ = std::fs::write(local.join(EXIT), bytes);
    }
}
