//! Garbage collection: drop every blob that no live digest reaches.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, SystemTime};

use super::error::IoContext;
use super::{Cas, CasError, Digest};

/// Temp files older than this are leftovers of a crash, not writes in progress.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// What a [`Cas::gc`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blobs kept (an executable copy counts apart).
    pub kept: u64,
    /// Blobs removed (or, in a dry run, that would be).
    pub removed: u64,
    /// Bytes those took.
    pub bytes_freed: u64,
}

impl Cas {
    /// Removes every blob not reachable from `live` (trees count with all their files), and
    /// temp files left by crashes. Blobs stored after `live` was computed and not in it are
    /// removed too: do not run it beside a run that is storing outputs.
    pub fn gc(&self, live: impl IntoIterator<Item = Digest>) -> Result<GcStats, CasError> {
        self.sweep(live, true)
    }

    /// What [`Cas::gc`] would remove, removing nothing.
    pub fn gc_dry_run(&self, live: impl IntoIterator<Item = Digest>) -> Result<GcStats, CasError> {
        self.sweep(live, false)
    }

    fn sweep(
        &self,
        live: impl IntoIterator<Item = Digest>,
        delete: bool,
    ) -> Result<GcStats, CasError> {
        let mut keep: HashSet<[u8; 32]> = HashSet::new();
        for digest in live {
            keep.insert(*digest.hash());
            if digest.is_tree() {
                // A tree whose manifest is gone has nothing left to keep.
                if let Ok(tree) = self.tree(&digest) {
                    keep.extend(tree.files.iter().map(|f| *f.digest.hash()));
                }
            }
        }
        let mut stats = GcStats::default();
        let objects = self.objects_dir();
        for shard in fs::read_dir(objects).at(objects)? {
            let shard = shard.at(objects)?.path();
            let Some(prefix) = shard
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            if !shard.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&shard).at(&shard)? {
                let entry = entry.at(&shard)?;
                let name = entry.file_name();
                let Some(hash) = name.to_str().and_then(|n| object_hash(&prefix, n)) else {
                    continue;
                };
                if keep.contains(&hash) {
                    stats.kept += 1;
                    continue;
                }
                let path = entry.path();
                let len = entry.metadata().at(&path)?.len();
                if delete {
                    fs::remove_file(&path).at(&path)?;
                }
                stats.removed += 1;
                stats.bytes_freed += len;
            }
        }
        if delete {
            self.remove_stale_temps()?;
        }
        Ok(stats)
    }

    fn remove_stale_temps(&self) -> Result<(), CasError> {
        let tmp = self.tmp_dir();
        let now = SystemTime::now();
        for entry in fs::read_dir(tmp).at(tmp)? {
            let path = entry.at(tmp)?.path();
            let modified = fs::metadata(&path).and_then(|m| m.modified()).at(&path)?;
            if now
                .duration_since(modified)
                .is_ok_and(|age| age > STALE_TEMP)
            {
                fs::remove_file(&path).at(&path)?;
            }
        }
        Ok(())
    }
}

/// The hash an object file is named by (`<2 hex>/<62 hex>[.x]`), if it is one.
fn object_hash(prefix: &str, name: &str) -> Option<[u8; 32]> {
    let rest = name.strip_suffix(".x").unwrap_or(name);
    if prefix.len() != 2
        || rest.len() != 62
        || !format!("{prefix}{rest}")
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    blake3::Hash::from_hex(format!("{prefix}{rest}"))
        .ok()
        .map(|h| *h.as_bytes())
}
