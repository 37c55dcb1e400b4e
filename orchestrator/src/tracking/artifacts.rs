//! A passed step's outputs in MLflow: each output up to the size limit (`max_artifact_size`,
//! default 16 MiB) is uploaded under its name through the server's artifact proxy; a bigger
//! one, or one not on this machine, is recorded as a tag with tuna's digest and location
//! (`tuna pull` finds it from those). A `finetune` step's uploaded `adapter` is registered as a
//! new version of a registered model, once per tuna attempt.

use std::path::{Path, PathBuf};

use super::client::{Client, MlflowError};
use super::config::Config;
use crate::store::{Location, StepRecord, StepStatus};

type Pairs = Vec<(String, String)>;

/// What the step's outputs became: tags for its MLflow run, and whether its `adapter` output
/// was uploaded.
pub(super) struct Outputs {
    pub tags: Pairs,
    pub adapter_uploaded: bool,
}

/// Uploads the small outputs of `rec` into MLflow run `run` and describes the others.
pub(super) fn send(
    c: &Client,
    run: &str,
    rec: &StepRecord,
    max: u64,
) -> Result<Outputs, MlflowError> {
    let mut out = Outputs {
        tags: Vec::new(),
        adapter_uploaded: false,
    };
    if rec.status != StepStatus::Passed || rec.outputs.is_empty() {
        return Ok(out);
    }
    let mut root: Option<String> = None;
    for (name, digest) in &rec.outputs {
        let clean = name.trim_end_matches('/');
        let key = format!("tuna.output.{}", super::export::metric_key(clean));
        let location = Location::of(&rec.locations, name);
        let here = rec
            .outputs_dir
            .as_deref()
            .map(|d| d.join(clean))
            .filter(|p| matches!(location, Location::Local) && p.symlink_metadata().is_ok());
        let files = here.as_deref().map(files_of).unwrap_or_default();
        let size: u64 = files.iter().map(|(_, n)| n).sum();
        let Some(dir) = here.filter(|_| size <= max) else {
            let why = if matches!(location, Location::Local) && size > max {
                format!(" ({size} bytes; over max_artifact_size {max}, not uploaded)")
            } else {
                " (not on this machine; not uploaded)".to_string()
            };
            let kept = match location {
                Location::Local => "tuna's artifact store".to_string(),
                Location::Runner { name } => format!("runner `{name}`"),
            };
            out.tags.push((key, format!("{digest} in {kept}{why}")));
            continue;
        };
        let root = match &root {
            Some(r) => r.clone(),
            None => root.insert(c.artifact_uri(run)?).clone(),
        };
        for (file, _) in &files {
            let rel = file.strip_prefix(&dir).unwrap_or(Path::new(""));
            let mut path = clean.to_string();
            for part in rel.components() {
                path.push('/');
                path.push_str(&part.as_os_str().to_string_lossy());
            }
            c.upload(&root, &path, file)?;
        }
        out.tags
            .push((key, format!("{digest} uploaded as {clean}")));
        out.adapter_uploaded |= clean == "adapter";
    }
    Ok(out)
}

/// The regular files at `path` (itself, or every one under it; links are not followed) with
/// their sizes, in name order.
fn files_of(path: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(meta) = path.symlink_metadata() else {
        return Vec::new();
    };
    if meta.is_file() {
        return vec![(path.to_path_buf(), meta.len())];
    }
    if !meta.is_dir() {
        return Vec::new();
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries.iter().flat_map(|p| files_of(p)).collect()
}

/// Registers the uploaded adapter of `rec` (MLflow run `run`): a new version of the registered
/// model `register_as` names for the step, else `WORKFLOW-STEP`, tagged with the base model,
/// tuna's run, step and attempt; a version already made for this attempt is not made again.
/// Returns `(model name, version)`.
pub(super) fn register(
    c: &Client,
    cfg: &Config,
    workflow: &str,
    run: &str,
    rec: &StepRecord,
    base_model: Option<&str>,
) -> Result<(String, String), MlflowError> {
    let name = cfg
        .register_as
        .get(&rec.step)
        .cloned()
        .unwrap_or_else(|| format!("{workflow}-{}", rec.step));
    let attempt = format!("{}:{}:{}", rec.run, rec.step, rec.attempts.len());
    let mut tags = vec![
        ("tuna.run_id".to_string(), rec.run.clone()),
        ("tuna.step".to_string(), rec.step.clone()),
        ("tuna.attempt".to_string(), attempt.clone()),
    ];
    if let Some(m) = base_model {
        tags.push(("tuna.base_model".to_string(), m.to_string()));
    }
    let source = format!("runs:/{run}/adapter");
    let (version, _) = c.register(&name, &source, run, &tags, ("tuna.attempt", &attempt))?;
    Ok((name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_listed_in_order_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("adapter");
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("b.json"), "12").unwrap();
        std::fs::write(a.join("sub/c.bin"), "1234").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.join("link")).unwrap();
        let got: Vec<(String, u64)> = files_of(&a)
            .into_iter()
            .map(|(p, n)| (p.strip_prefix(&a).unwrap().display().to_string(), n))
            .collect();
        assert_eq!(got, [("b.json".into(), 2), ("sub/c.bin".into(), 4)]);
        assert_eq!(files_of(&a.join("b.json")).len(), 1);
        assert!(files_of(&d.path().join("none")).is_empty());
    }
}
