//! [`Manifest`]: the list of project files a submission carries — each file's path in the
//! project, digest, size and mode, plus the empty folders — and the checks a daemon makes on
//! it before anything is stored: paths that stay inside the project, no file listed twice,
//! and the size limits.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::blob_name::BlobName;
use super::error::ProjectError;
use super::limits::Limits;

/// The project files of a submission (`"project"` in `POST /api/v1/runs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub files: Vec<ManifestFile>,
    /// Folders with nothing in them that the workflow reads (an empty `inputs:` folder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<String>,
}

/// One file: where it goes in the project folder and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative to the workflow file's folder, `/`-separated.
    pub path: String,
    /// `b3:HEX` (blake3) or `sha256:HEX` of the file's bytes.
    pub digest: BlobName,
    pub size: u64,
    /// Unix permission bits; only whether any execute bit is set is kept.
    #[serde(default = "default_mode")]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o644
}

impl ManifestFile {
    pub fn executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

impl Manifest {
    /// The sum of the files' sizes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Every path stays inside the project, no path is listed twice or both as a file and
    /// as a folder, and the files fit `limits`.
    pub fn check(&self, limits: &Limits) -> Result<(), ProjectError> {
        if self.files.len() > limits.max_files {
            return Err(ProjectError::TooManyFiles {
                count: self.files.len(),
                limit: limits.max_files,
            });
        }
        let mut files = BTreeSet::new();
        for f in &self.files {
            check_path(&f.path).map_err(|reason| ProjectError::bad(&f.path, reason))?;
            if f.mode > 0o7777 {
                return Err(ProjectError::bad(
                    &f.path,
                    format!("has mode {:o}, which is not a permission mode", f.mode),
                ));
            }
            if f.size > limits.max_file {
                return Err(ProjectError::FileTooLarge {
                    path: f.path.clone(),
                    size: f.size,
                    limit: limits.max_file,
                });
            }
            if !files.insert(f.path.as_str()) {
                return Err(ProjectError::bad(&f.path, "is listed twice"));
            }
        }
        for d in &self.dirs {
            check_path(d).map_err(|reason| ProjectError::bad(d, reason))?;
            if files.contains(d.as_str()) {
                return Err(ProjectError::bad(
                    d,
                    "is listed both as a file and a folder",
                ));
            }
        }
        for p in self.files.iter().map(|f| &f.path).chain(&self.dirs) {
            if let Some(parent) = ancestors(p).find(|a| files.contains(a)) {
                return Err(ProjectError::bad(
                    p,
                    format!("lies under `{parent}`, which is listed as a file"),
                ));
            }
        }
        let total = self.total_size();
        if total > limits.max_total {
            return Err(ProjectError::TotalTooLarge {
                total,
                limit: limits.max_total,
            });
        }
        Ok(())
    }
}

/// The folders above a relative path, nearest first: `a/b/c` → `a/b`, `a`.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let (parent, _) = rest.rsplit_once('/')?;
        rest = parent;
        Some(parent)
    })
}

/// A path of the project as a manifest may name it: relative, `/`-separated, each component a
/// plain name (never `..`, `.` or empty). Why not, otherwise.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.starts_with('/') {
        return Err(
            "is an absolute path; project paths are relative to the workflow's folder".into(),
        );
    }
    if path.contains('\0') {
        return Err("holds a NUL byte".into());
    }
    if path.len() > 4096 {
        return Err("is longer than 4096 bytes".into());
    }
    for c in path.split('/') {
        match c {
            ".." => return Err("leaves the project folder (`..`)".into()),
            "." | "" => {
                return Err("is not a plain relative path (`.` or an empty component)".into());
            }
            c if c.len() > 255 => return Err("has a component longer than 255 bytes".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            digest: format!("b3:{}", blake3::hash(path.as_bytes()).to_hex())
                .parse()
                .unwrap(),
            size,
            mode: 0o644,
        }
    }

    #[test]
    fn paths_that_leave_the_project_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "./a",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "data/train.jsonl", "a..b/c", ".hidden/x"] {
            assert!(check_path(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_manifest_is_checked_against_the_limits_naming_the_file() {
        let limits = Limits {
            max_file: 100,
            max_total: 150,
            max_files: 3,
        };
        let ok = Manifest {
            files: vec![file("a", 100), file("b/c", 50)],
            dirs: vec!["empty".into()],
        };
        ok.check(&limits).unwrap();
        let big = Manifest {
            files: vec![file("data/big.bin", 101)],
            dirs: vec![],
        };
        let e = big.check(&limits).unwrap_err().to_string();
        assert!(e.contains("data/big.bin") && e.contains("100 B"), "{e}");
        let total = Manifest {
            files: vec![file("a", 100), file("b", 100)],
            dirs: vec![],
        };
        assert!(matches!(
            total.check(&limits),
            Err(ProjectError::TotalTooLarge { total: 200, .. })
        ));
        let many = Manifest {
            files: (0..4).map(|i| file(&format!("f{i}"), 1)).collect(),
            dirs: vec![],
        };
        assert!(matches!(
            many.check(&limits),
            Err(ProjectError::TooManyFiles { count: 4, .. })
        ));
        let escape = Manifest {
            files: vec![file("../secret", 1)],
            dirs: vec![],
        };
        let e = escape.check(&limits).unwrap_err().to_string();
        assert!(e.contains("../secret") && e.contains(".."), "{e}");
    }

    #[test]
    fn a_path_is_one_thing_only() {
        let limits = Limits::default();
        let twice = Manifest {
            files: vec![file("a", 1), file("a", 1)],
            dirs: vec![],
        };
        assert!(twice.check(&limits).is_err());
        let under_file = Manifest {
            files: vec![file("a", 1), file("a/b", 1)],
            dirs: vec![],
        };
        assert!(under_file.check(&limits).is_err());
        let dir_is_file = Manifest {
            files: vec![file("a", 1)],
            dirs: vec!["a".into()],
        };
        assert!(dir_is_file.check(&limits).is_err());
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a/b", "a"]);
    }
}
