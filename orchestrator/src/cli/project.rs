//! Sending a workflow's project with `tuna submit` and `tuna schedule add`: the files it reads
//! are found and hashed here, the daemon says which blobs it lacks, only those are uploaded
//! (streamed from disk), then the submission carries the manifest. Also `tuna serve`'s limits
//! on what a submission may carry.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::client::Client;
use super::exit::Fail;
use crate::project::{
    BlobName, DEFAULT_MAX_FILE, DEFAULT_MAX_FILES, DEFAULT_MAX_TOTAL, Limits, ProjectError,
    human_size,
};

/// `tuna serve`'s limits on submitted project files.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// The largest project file a submission may carry, e.g. 8GiB or 500MB [default: 8GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    /// The most bytes of project files one submission may carry [default: 32GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_submission_size: Option<u64>,
    /// The most project files one submission may carry.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FILES)]
    pub max_files: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_file: self.max_file_size.unwrap_or(DEFAULT_MAX_FILE),
            max_total: self.max_submission_size.unwrap_or(DEFAULT_MAX_TOTAL),
            max_files: self.max_files,
        }
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::workflow::parse_size(s)
}

/// The body of a submission of the workflow at `file`: its text and name, the params, and
/// the project it reads (whose missing blobs are uploaded first).
pub fn submission(
    client: &Client,
    file: &Path,
    params: &[(String, String)],
) -> Result<Value, Fail> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Fail::invalid(format!("error: {}: {e}", file.display())))?;
    let overrides: BTreeMap<String, String> = params.iter().cloned().collect();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut body = json!({ "workflow": text, "params": overrides, "file": name });
    if let Some(project) = send_project(client, file, &text, &overrides)? {
        body["project"] = project;
    }
    Ok(body)
}

/// Finds and hashes the project files the workflow reads and uploads those the daemon lacks;
/// the manifest. None when the workflow does not load here: the daemon then says why, with
/// positions.
fn send_project(
    client: &Client,
    file: &Path,
    text: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<Option<Value>, Fail> {
    let Ok(dag) = crate::dag::load_str(file, text) else {
        return Ok(None);
    };
    let wf = dag.workflow();
    let params = crate::engine::merged_params(wf, overrides)
        .map_err(|m| Fail::invalid(format!("error: {m}")))?;
    let hashed = crate::project::collect(wf, &params)
        .and_then(|p| p.hash())
        .map_err(fail)?;
    let manifest = serde_json::to_value(&hashed.manifest).expect("json");
    if hashed.manifest.files.is_empty() {
        return Ok(Some(manifest));
    }
    let answer = client.post("/api/v1/blobs/missing", &manifest)?;
    let mut sent = (0usize, 0u64);
    for name in answer["missing"].as_array().into_iter().flatten() {
        let name: BlobName = name
            .as_str()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Fail::env(format!("error: bad answer from the daemon: {answer}")))?;
        let source = hashed.sources.get(&name).ok_or_else(|| {
            Fail::env(format!(
                "error: the daemon asked for {name}, which is not in the project"
            ))
        })?;
        let v = client.put_file(&format!("/api/v1/blobs/{name}"), source)?;
        sent.0 += 1;
        sent.1 += v["size"].as_u64().unwrap_or(0);
    }
    let m = &hashed.manifest;
    let files = |n: usize| {
        if n == 1 {
            "1 file".to_string()
        } else {
            format!("{n} files")
        }
    };
    let uploaded = if sent.0 == 0 {
        "the daemon has them all, nothing uploaded".to_string()
    } else {
        format!("uploaded {} ({})", files(sent.0), human_size(sent.1))
    };
    eprintln!(
        "project: {} ({}); {uploaded}",
        files(m.files.len()),
        human_size(m.total_size()),
    );
    Ok(Some(manifest))
}

fn fail(e: ProjectError) -> Fail {
    if e.is_internal() {
        Fail::env(format!("error: {e}"))
    } else {
        Fail::invalid(format!("error: {e}"))
    }
}
