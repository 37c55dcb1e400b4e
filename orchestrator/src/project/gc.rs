//! Which submission snapshots `tuna gc` keeps: those a kept run's workflow file lies in, and
//! those a registered schedule names. The rest of `$TUNA_HOME/submissions/` (and temp folders
//! a crash left there) goes.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::snapshot::SUBMISSIONS;
use crate::cas::{Digest, DigestKind};
use crate::store::{RunRecord, ScheduleRecord};

/// What [`plan`] decided.
#[derive(Debug, Default)]
pub struct SnapshotGc {
    /// The trees of the snapshots kept: their blobs stay in the store.
    pub live: Vec<Digest>,
    /// Folders under `submissions/` nothing refers to.
    pub unreferenced: Vec<PathBuf>,
}

/// Decides, for the runs kept and the schedules registered, what stays.
pub fn plan<'a>(
    home_root: &Path,
    runs: impl IntoIterator<Item = &'a RunRecord>,
    schedules: &[ScheduleRecord],
) -> io::Result<SnapshotGc> {
    let root = home_root.join(SUBMISSIONS);
    let mut names: BTreeSet<String> = BTreeSet::new();
    for r in runs {
        let Some(folder) = r.workflow_path.parent() else {
            continue;
        };
        if folder.parent() == Some(root.as_path())
            && let Some(name) = folder.file_name().and_then(|n| n.to_str())
        {
            names.insert(name.to_string());
        }
    }
    let mut live: Vec<Digest> = Vec::new();
    for s in schedules {
        if let Some(snap) = &s.snapshot
            && let Ok(d) = snap.digest.parse::<Digest>()
        {
            names.insert(d.hex());
            live.push(d);
        }
    }
    live.extend(names.iter().filter_map(|n| tree_named(n)));
    live.sort();
    live.dedup();
    let mut unreferenced = Vec::new();
    match fs::read_dir(&root) {
        Ok(entries) => {
            for e in entries {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !names.contains(&name) {
                    unreferenced.push(e.path());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    unreferenced.sort();
    Ok(SnapshotGc { live, unreferenced })
}

/// The tree a snapshot folder is named after (64 hex digits), if it is one.
fn tree_named(name: &str) -> Option<Digest> {
    let hash = blake3::Hash::from_hex(name).ok()?;
    (name.len() == 64 && !name.bytes().any(|b| b.is_ascii_uppercase()))
        .then(|| Digest::new(DigestKind::Tree, *hash.as_bytes()))
}

/// Removes a snapshot folder (its files are read-only hard links; the folders are not).
pub fn remove(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(dir),
        Ok(_) => fs::remove_file(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
