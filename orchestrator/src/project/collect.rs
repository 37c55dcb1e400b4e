//! The client's side: every project file a workflow reads with a run's params — its steps'
//! `inputs:` (files and folders) and the files its `uses:` steps name by path in `with:` — found
//! beside the workflow file, refused when it would leave the project (a `..`, a symbolic link
//! pointing outside), then hashed into a [`Manifest`]. Absolute `with:` paths name a place on
//! the daemon's (or a runner's) machine and do not travel.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::blob_name::BlobName;
use super::error::ProjectError;
use super::manifest::{Manifest, ManifestFile, check_path};
use crate::cas::{Digest, DigestKind};
use crate::workflow::Workflow;

/// A project file found on this machine.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where its bytes are (symbolic links resolved).
    pub source: PathBuf,
    pub mode: u32,
}

/// The project files a workflow reads, by their path in the project.
#[derive(Debug, Default)]
pub struct LocalProject {
    pub files: BTreeMap<String, LocalFile>,
    pub dirs: BTreeSet<String>,
}

/// A manifest and where each of its blobs can be read from.
#[derive(Debug)]
pub struct Hashed {
    pub manifest: Manifest,
    pub sources: BTreeMap<BlobName, PathBuf>,
}

/// What one read of the workflow is, for messages: `input of step `count``.
struct Read_ {
    what: String,
    rel: String,
}

/// The relative paths a workflow reads with these params.
fn reads(wf: &Workflow, params: &BTreeMap<String, String>) -> Vec<Read_> {
    let mut out = Vec::new();
    for step in wf.steps.values() {
        for input in &step.inputs {
            out.push(Read_ {
                what: format!("input of step `{}`", step.name),
                rel: input.trim_end_matches('/').to_string(),
            });
        }
        for (key, path) in crate::cache::with_paths(step, params) {
            if Path::new(&path).is_absolute() {
                continue;
            }
            out.push(Read_ {
                what: format!("`with.{key}` of step `{}`", step.name),
                rel: path,
            });
        }
    }
    out
}

/// Finds every project file `wf` reads with `params` (defaults merged with `-p` values).
pub fn collect(
    wf: &Workflow,
    params: &BTreeMap<String, String>,
) -> Result<LocalProject, ProjectError> {
    let root =
        fs::canonicalize(&wf.project_dir).map_err(|e| ProjectError::io(&wf.project_dir, e))?;
    let mut project = LocalProject::default();
    for r in reads(wf, params) {
        check_path(&r.rel)
            .map_err(|why| ProjectError::bad(&r.rel, format!("({}) {why}", r.what)))?;
        let full = root.join(&r.rel);
        if fs::symlink_metadata(&full).is_err() {
            return Err(ProjectError::bad(
                &r.rel,
                format!("({}) does not exist ({})", r.what, full.display()),
            ));
        }
        project.add(&root, &r.rel, &full, &r.what, &mut Vec::new())?;
    }
    Ok(project)
}

impl LocalProject {
    /// Adds the file or folder `full` (named `rel` in the project), following symbolic links
    /// that stay inside `root`. `stack`: the folders being walked (to refuse link loops).
    fn add(
        &mut self,
        root: &Path,
        rel: &str,
        full: &Path,
        what: &str,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), ProjectError> {
        let bad = |why: String| ProjectError::bad(rel, format!("({what}) {why}"));
        let real = fs::canonicalize(full)
            .map_err(|_| bad("is a symbolic link to nothing (or cannot be read)".into()))?;
        if !real.starts_with(root) {
            return Err(bad(format!(
                "leads to {}, outside the project folder {}; copy it into the project",
                real.display(),
                root.display()
            )));
        }
        let meta = fs::metadata(&real).map_err(|e| bad(e.to_string()))?;
        if meta.is_file() {
            self.files.insert(
                rel.to_string(),
                LocalFile {
                    source: real,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
            return Ok(());
        }
        if !meta.is_dir() {
            return Err(bad("is not a file or a folder".into()));
        }
        if stack.contains(&real) {
            return Err(bad(
                "is a symbolic link into a folder that holds it (a loop)".into(),
            ));
        }
        let mut names = Vec::new();
        for e in fs::read_dir(&real).map_err(|e| bad(e.to_string()))? {
            let name = e.map_err(|e| bad(e.to_string()))?.file_name();
            let name = name
                .into_string()
                .map_err(|n| bad(format!("holds {n:?}, a name that is not UTF-8")))?;
            names.push(name);
        }
        names.sort();
        if names.is_empty() {
            self.dirs.insert(rel.to_string());
        }
        stack.push(real.clone());
        for name in names {
            self.add(
                root,
                &format!("{rel}/{name}"),
                &real.join(&name),
                what,
                stack,
            )?;
        }
        stack.pop();
        Ok(())
    }

    /// Hashes every file (streaming) into a manifest.
    pub fn hash(&self) -> Result<Hashed, ProjectError> {
        let mut manifest = Manifest {
            files: Vec::with_capacity(self.files.len()),
            dirs: self.dirs.iter().cloned().collect(),
        };
        let mut sources = BTreeMap::new();
        for (path, f) in &self.files {
            let (hash, size) = hash_file(&f.source)?;
            let digest = BlobName::B3(Digest::new(DigestKind::Blob, *hash.as_bytes()));
            sources.insert(digest, f.source.clone());
            manifest.files.push(ManifestFile {
                path: path.clone(),
                digest,
                size,
                mode: f.mode,
            });
        }
        Ok(Hashed { manifest, sources })
    }
}

/// blake3 and length of a file, read in chunks.
fn hash_file(path: &Path) -> Result<(blake3::Hash, u64), ProjectError> {
    let mut file = File::open(path).map_err(|e| ProjectError::io(path, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| ProjectError::io(path, e))?;
        if n == 0 {
            return Ok((hasher.finalize(), len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}
