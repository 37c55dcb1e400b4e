//! [`Aliases`]: which stored blob a `sha256:` name stands for. One small file per name under
//! `$TUNA_HOME/cas/sha256/<2 hex>/<62 hex>` holding the blob's `b3:` digest, written by an
//! atomic rename once the blob is stored; `tuna gc` drops those whose blob is gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::blob_name::hex;
use crate::cas::{Cas, Digest};

#[derive(Debug)]
pub struct Aliases {
    dir: PathBuf,
}

impl Aliases {
    pub fn new(cas_root: &Path) -> Aliases {
        Aliases {
            dir: cas_root.join("sha256"),
        }
    }

    fn path(&self, sha: &[u8; 32]) -> PathBuf {
        let h = hex(sha);
        self.dir.join(&h[..2]).join(&h[2..])
    }

    /// The blob a sha256 stands for, if one was stored under it.
    pub fn get(&self, sha: &[u8; 32]) -> Option<Digest> {
        let text = fs::read_to_string(self.path(sha)).ok()?;
        text.trim().parse::<Digest>().ok().filter(|d| !d.is_tree())
    }

    /// Records that `sha` names the stored blob `blob`.
    pub fn put(&self, sha: &[u8; 32], blob: &Digest) -> io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.path(sha);
        let parent = path.parent().expect("alias paths have a parent");
        fs::create_dir_all(parent)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".tmp-{}-{n}", std::process::id()));
        fs::write(&tmp, blob.to_string())?;
        fs::rename(&tmp, &path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Drops every alias whose blob `cas` no longer holds (and leftover temp files); how many
    /// were dropped (or, with `delete` false, would be).
    pub fn prune(&self, cas: &Cas, delete: bool) -> io::Result<usize> {
        let shards = match fs::read_dir(&self.dir) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut dropped = 0;
        for shard in shards {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&shard)? {
                let path = entry?.path();
                let live = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse::<Digest>().ok())
                    .is_some_and(|d| cas.contains(&d));
                if !live {
                    if delete {
                        fs::remove_file(&path)?;
                    }
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }
}
