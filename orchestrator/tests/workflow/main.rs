//! Workflow loading, diagnostics and the DAG, tested through the public API.

mod corpus;
mod cron_oracle;
mod dag;
mod loader;

use std::path::{Path, PathBuf};

/// The repository root (the workspace).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `*.yaml` files in `dir` (relative to the repository root), sorted, as (stem, relative path).
pub fn yaml_files(dir: &str) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                Path::new(dir).join(p.file_name().unwrap()),
            )
        })
        .collect();
    out.sort();
    out
}
