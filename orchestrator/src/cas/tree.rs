//! [`Tree`]: the manifest a folder is stored as, and reading a folder into one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::IoContext;
use super::{CasError, Digest};

/// The version of the manifest format; part of every tree's digest.
pub(crate) const TREE_FORMAT: u32 = 1;

/// A folder's content: its files (sorted by path) and its empty folders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub format: u32,
    pub files: Vec<TreeFile>,
    /// Folders with nothing in them, which the file list alone would not bring back.
    pub empty_dirs: Vec<String>,
}

/// One file of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeFile {
    /// Relative, `/`-separated.
    pub path: String,
    pub digest: Digest,
    pub executable: bool,
    pub size: u64,
}

/// A file found while walking a folder, before it is stored.
#[derive(Debug)]
pub(crate) struct FoundFile {
    pub source: PathBuf,
    pub path: String,
    pub executable: bool,
}

impl Tree {
    /// A manifest of the current format; `files` sorted by path, `empty_dirs` sorted.
    pub fn new(files: Vec<TreeFile>, empty_dirs: Vec<String>) -> Tree {
        Tree {
            format: TREE_FORMAT,
            files,
            empty_dirs,
        }
    }

    /// The canonical bytes the tree is stored as and named by.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a tree always serializes")
    }

    pub(crate) fn from_bytes(digest: Digest, bytes: &[u8]) -> Result<Tree, CasError> {
        let bad = |reason: String| CasError::BadTree { digest, reason };
        let tree: Tree = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if tree.format != TREE_FORMAT {
            return Err(bad(format!("unknown manifest format {}", tree.format)));
        }
        let paths = tree.files.iter().map(|f| &f.path).chain(&tree.empty_dirs);
        if let Some(path) = paths.into_iter().find(|p| !is_safe_relative(p)) {
            return Err(bad(format!("the path `{path}` leaves the folder")));
        }
        Ok(tree)
    }

    /// Lists the files and empty folders under `root`, sorted by path. Symbolic links are
    /// followed.
    pub(crate) fn walk(root: &Path) -> Result<(Vec<FoundFile>, Vec<String>), CasError> {
        let mut files = Vec::new();
        let mut empty_dirs = Vec::new();
        walk_into(root, "", &mut files, &mut empty_dirs)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        empty_dirs.sort();
        Ok((files, empty_dirs))
    }
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<FoundFile>,
    empty_dirs: &mut Vec<String>,
) -> Result<(), CasError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .at(dir)?
        .collect::<Result<_, _>>()
        .at(dir)?;
    if entries.is_empty() && !prefix.is_empty() {
        empty_dirs.push(prefix.trim_end_matches('/').to_owned());
    }
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let source = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| CasError::Unsupported {
                path: source.clone(),
                reason: "the file name is not UTF-8".into(),
            })?;
        let path = format!("{prefix}{name}");
        let meta = fs::metadata(&source).at(&source)?;
        if meta.is_dir() {
            walk_into(&source, &format!("{path}/"), files, empty_dirs)?;
        } else if meta.is_file() {
            let executable = meta.permissions().mode() & 0o111 != 0;
            files.push(FoundFile {
                source,
                path,
                executable,
            });
        } else {
            return Err(CasError::Unsupported {
                path: source,
                reason: "only files and folders can be stored (not sockets, pipes or devices)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Whether `path` is relative and stays inside the folder it is relative to.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}
