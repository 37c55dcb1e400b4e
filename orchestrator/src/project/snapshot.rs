//! [`Snapshots`]: a submission's project on the daemon. The workflow file and the files it
//! reads become one tree in the store (its digest names the snapshot), laid out as the run's
//! project folder `$TUNA_HOME/submissions/HEX/` by hard links from the store, so relative
//! paths resolve there as they do beside the workflow file with `tuna run`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::aliases::Aliases;
use super::blob_name::BlobName;
use super::error::ProjectError;
use super::limits::{Limits, MAX_WORKFLOW};
use super::manifest::{Manifest, ancestors};
use crate::cas::{Cas, Digest, Tree, TreeFile};

/// The folder under `$TUNA_HOME` that holds laid-out snapshots.
pub const SUBMISSIONS: &str = "submissions";

pub struct Snapshots {
    root: PathBuf,
    cas: Arc<Cas>,
    pub aliases: Aliases,
}

/// A stored, laid-out snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The tree of the workflow file and its project files.
    pub digest: Digest,
    /// The project folder: the workflow file and the files it reads, in place.
    pub dir: PathBuf,
    /// Files in it, the workflow file included.
    pub files: usize,
}

impl Snapshots {
    pub fn new(home_root: &Path, cas: Arc<Cas>) -> Snapshots {
        Snapshots {
            root: home_root.join(SUBMISSIONS),
            aliases: Aliases::new(cas.root()),
            cas,
        }
    }

    pub fn cas(&self) -> &Cas {
        &self.cas
    }

    /// Checks a manifest (paths, limits) and lists the blobs it names that the store lacks.
    pub fn missing(&self, m: &Manifest, limits: &Limits) -> Result<Vec<BlobName>, ProjectError> {
        m.check(limits)?;
        let mut missing = BTreeSet::new();
        for f in &m.files {
            if self.resolve(&f.digest).is_none() {
                missing.insert(f.digest);
            }
        }
        Ok(missing.into_iter().collect())
    }

    /// The stored blob a name stands for, if the store holds it.
    fn resolve(&self, name: &BlobName) -> Option<Digest> {
        let d = match name {
            BlobName::B3(d) => *d,
            BlobName::Sha256(h) => self.aliases.get(h)?,
        };
        self.cas.contains(&d).then_some(d)
    }

    /// Stores the snapshot of a workflow file (`file_name`, `text`) and the project files
    /// `m` lists (each blob must be stored already), and lays it out.
    pub fn prepare(
        &self,
        file_name: &str,
        text: &str,
        m: Option<&Manifest>,
        limits: &Limits,
    ) -> Result<Snapshot, ProjectError> {
        if text.len() as u64 > MAX_WORKFLOW {
            return Err(ProjectError::WorkflowTooLarge {
                size: text.len() as u64,
            });
        }
        let empty = Manifest::default();
        let m = m.unwrap_or(&empty);
        m.check(limits)?;
        let workflow = self.cas.put_bytes(text.as_bytes())?;
        let mut files = vec![TreeFile {
            path: file_name.to_string(),
            digest: workflow,
            executable: false,
            size: text.len() as u64,
        }];
        for f in &m.files {
            let digest = self
                .resolve(&f.digest)
                .ok_or_else(|| ProjectError::NotUploaded {
                    path: f.path.clone(),
                    digest: f.digest.to_string(),
                })?;
            let actual = self.cas.size(&digest)?;
            if actual != f.size {
                return Err(ProjectError::WrongSize {
                    path: f.path.clone(),
                    digest: f.digest.to_string(),
                    declared: f.size,
                    actual,
                });
            }
            if f.path == file_name {
                if digest != workflow {
                    return Err(ProjectError::bad(
                        &f.path,
                        "has the workflow file's name but not the submitted workflow's content",
                    ));
                }
                continue;
            }
            if ancestors(&f.path).any(|a| a == file_name) {
                return Err(ProjectError::bad(
                    &f.path,
                    "lies under a folder with the workflow file's name",
                ));
            }
            files.push(TreeFile {
                path: f.path.clone(),
                digest,
                executable: f.executable(),
                size: f.size,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        // Only folders that would be empty: the same project always has the same digest.
        let mut holders: BTreeSet<&str> = BTreeSet::new();
        for p in files
            .iter()
            .map(|f| f.path.as_str())
            .chain(m.dirs.iter().map(String::as_str))
        {
            holders.extend(ancestors(p));
        }
        let dirs: BTreeSet<String> = m
            .dirs
            .iter()
            .filter(|d| !holders.contains(d.as_str()) && d.as_str() != file_name)
            .cloned()
            .collect();
        let count = files.len();
        let digest = self
            .cas
            .put_tree(&Tree::new(files, dirs.into_iter().collect()))?;
        let dir = self.lay_out(&digest)?;
        Ok(Snapshot {
            digest,
            dir,
            files: count,
        })
    }

    /// Where the snapshot `digest` is laid out.
    pub fn dir_of(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.hex())
    }

    /// The project folder of a stored snapshot, laid out from the store if it is not there:
    /// into a temp folder first, renamed into place whole.
    pub fn lay_out(&self, digest: &Digest) -> Result<PathBuf, ProjectError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = self.dir_of(digest);
        if dir.is_dir() {
            return Ok(dir);
        }
        fs::create_dir_all(&self.root).map_err(|e| ProjectError::io(&self.root, e))?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!(".tmp-{}-{}-{n}", digest.hex(), std::process::id()));
        let placed = self.cas.materialize(digest, &tmp);
        if let Err(e) = placed {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e.into());
        }
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            // Another submission of the same snapshot laid it out first.
            if !dir.is_dir() {
                return Err(ProjectError::io(&dir, e));
            }
        }
        Ok(dir)
    }
}
