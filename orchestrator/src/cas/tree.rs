//! [`Tree`]: the manifest a folder is stored as, and reading a folder into one.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    /// Not the step's alone (reached through a link, or it has other names): copied, never
    /// linked into the store.
    pub copy: bool,
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

    /// Lists the files and empty folders under `root`, sorted by path. A symbolic link is
    /// followed when it leads inside `within` (canonical; the step's own folder) and refused
    /// otherwise, as is a link back to a folder being walked.
    pub(crate) fn walk(
        root: &Path,
        within: &Path,
    ) -> Result<(Vec<FoundFile>, Vec<String>), CasError> {
        let mut walk = Walk {
            within,
            files: Vec::new(),
            empty_dirs: Vec::new(),
            open: vec![fs::canonicalize(root).at(root)?],
        };
        walk.dir(root, "", false)?;
        let (mut files, mut empty_dirs) = (walk.files, walk.empty_dirs);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        empty_dirs.sort();
        Ok((files, empty_dirs))
    }
}

/// One walk of an output folder.
struct Walk<'a> {
    within: &'a Path,
    files: Vec<FoundFile>,
    empty_dirs: Vec<String>,
    /// The folders being walked (canonical), to refuse a link back to one of them.
    open: Vec<PathBuf>,
}

impl Walk<'_> {
    /// `via_link`: the folder was reached through a symbolic link, so nothing in it is the
    /// step's own to link in.
    fn dir(&mut self, dir: &Path, prefix: &str, via_link: bool) -> Result<(), CasError> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .at(dir)?
            .collect::<Result<_, _>>()
            .at(dir)?;
        if entries.is_empty() && !prefix.is_empty() {
            self.empty_dirs
                .push(prefix.trim_end_matches('/').to_owned());
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
            let is_link = entry.file_type().at(&source)?.is_symlink();
            let linked = via_link || is_link;
            let real = if is_link {
                super::store::confined(&source, self.within)?
            } else {
                source.clone()
            };
            let meta = fs::metadata(&real).at(&source)?;
            if meta.is_dir() {
                if is_link {
                    if self.open.iter().any(|o| o == &real) {
                        return Err(CasError::Unsupported {
                            path: source,
                            reason: "a symbolic link back to a folder that contains it".into(),
                        });
                    }
                    self.open.push(real.clone());
                    self.dir(&real, &format!("{path}/"), true)?;
                    self.open.pop();
                } else {
                    let canonical = self.open.last().map(|o| o.join(&name));
                    self.open.extend(canonical);
                    self.dir(&source, &format!("{path}/"), linked)?;
                    self.open.pop();
                }
            } else if meta.is_file() {
                self.files.push(FoundFile {
                    source: real,
                    path,
                    executable: meta.permissions().mode() & 0o111 != 0,
                    copy: linked || meta.nlink() > 1,
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
}

/// Whether `path` is relative and stays inside the folder it is relative to.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}
