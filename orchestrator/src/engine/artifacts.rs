//! Outputs kept on a runner's machine (a big output of a step on an ssh runner, see
//! [`KeptOutputs`]): recording them by digest and location, checking that they are still
//! there before a cache hit counts, and moving them where a step needs them. A step on the
//! same runner gets them linked in place (nothing moves); a step on another ssh runner gets
//! them streamed runner → runner through tuna; a step on this machine gets them in the local
//! store first. Every move streams in chunks and checks each blob's digest.
//!
//! All of it blocks (it talks to other machines): call it from blocking threads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tuna_runners::{BlobError, BlobSession, BlobStore, KeptFile, KeptOutput, Runner};

use crate::cache::DirtyReason;
use crate::cas::{Cas, Digest, DigestKind, Tree, TreeFile};
use crate::store::Location;

/// How long a cache check waits for a runner's machine to answer.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Finds a runner of the inventory by name.
pub(crate) type Runners<'a> = &'a dyn Fn(&str) -> Option<Arc<dyn Runner>>;

fn blob_digest(hex: &str) -> Result<Digest, String> {
    format!("b3:{hex}")
        .parse()
        .map_err(|e: crate::cas::DigestParseError| e.to_string())
}

/// The digest of an output kept on a runner: its blob's, or for a folder its tree's (the
/// manifest goes into the local store; the files stay on the runner).
pub(crate) fn record(cas: &Cas, kept: &KeptOutput) -> Result<Digest, String> {
    if !kept.dir {
        let file = kept
            .files
            .first()
            .ok_or("a kept file output lists no file")?;
        return blob_digest(&file.hex);
    }
    let mut files = Vec::with_capacity(kept.files.len());
    for f in &kept.files {
        files.push(TreeFile {
            path: f.path.clone(),
            digest: blob_digest(&f.hex)?,
            executable: f.executable,
            size: f.size,
        });
    }
    cas.put_tree(&Tree::new(files, kept.empty_dirs.clone()))
        .map_err(|e| e.to_string())
}

/// The files of an output kept on a runner, from its digest (a tree's manifest is local).
pub(crate) fn listing(cas: &Cas, digest: &Digest) -> Result<KeptOutput, String> {
    if digest.kind() == DigestKind::Blob {
        return Ok(KeptOutput {
            dir: false,
            files: vec![KeptFile {
                path: String::new(),
                hex: digest.hex(),
                size: 0,
                executable: false,
            }],
            empty_dirs: Vec::new(),
        });
    }
    let tree = cas.tree(digest).map_err(|e| e.to_string())?;
    Ok(KeptOutput {
        dir: true,
        files: tree
            .files
            .iter()
            .map(|f| KeptFile {
                path: f.path.clone(),
                hex: f.digest.hex(),
                size: f.size,
                executable: f.executable,
            })
            .collect(),
        empty_dirs: tree.empty_dirs,
    })
}

/// Why the recorded outputs cannot be reused (empty: every one is where it is recorded).
/// Local outputs are looked up in the local store; kept ones with one cheap existence check
/// on their runner's machine, bounded by [`CHECK_TIMEOUT`]. `unreachable` remembers runners
/// that did not answer, so that one down host costs one wait per plan or run.
pub(crate) fn check(
    cas: &Cas,
    runners: Runners<'_>,
    outputs: &BTreeMap<String, Digest>,
    locations: &BTreeMap<String, Location>,
    unreachable: &mut HashMap<String, String>,
) -> Vec<DirtyReason> {
    let mut reasons = Vec::new();
    for (output, digest) in outputs {
        let Some(name) = Location::of(locations, output).runner() else {
            if !cas.contains(digest) {
                reasons.push(DirtyReason::OutputMissing {
                    output: output.clone(),
                    runner: None,
                });
            }
            continue;
        };
        let unreachable_because = |reason: String| DirtyReason::OutputUnreachable {
            output: output.clone(),
            runner: name.to_owned(),
            reason,
        };
        if let Some(reason) = unreachable.get(name) {
            reasons.push(unreachable_because(reason.clone()));
            continue;
        }
        let Some(runner) = runners(name) else {
            reasons.push(unreachable_because(
                "it is no longer in the runner inventory".into(),
            ));
            continue;
        };
        if runner.is_down() {
            reasons.push(unreachable_because("its host is down".into()));
            continue;
        }
        let Some(store) = runner.blob_store() else {
            reasons.push(unreachable_because("it keeps no outputs".into()));
            continue;
        };
        let hexes: Vec<String> = match listing(cas, digest) {
            Ok(l) => l.files.into_iter().map(|f| f.hex).collect(),
            Err(_) => {
                reasons.push(DirtyReason::OutputMissing {
                    output: output.clone(),
                    runner: None,
                });
                continue;
            }
        };
        match store.missing(&hexes, CHECK_TIMEOUT) {
            Ok(lacking) if lacking.is_empty() => {}
            Ok(_) => reasons.push(DirtyReason::OutputMissing {
                output: output.clone(),
                runner: Some(name.to_owned()),
            }),
            Err(e) => {
                let reason = e.to_string();
                if matches!(e, BlobError::Unreachable(_)) {
                    unreachable.insert(name.to_owned(), reason.clone());
                }
                reasons.push(unreachable_because(reason));
            }
        }
    }
    reasons
}

/// Something to do before a step's job starts: bring an upstream output it needs from the
/// runner that keeps it.
pub(crate) enum Prep {
    /// Into the local store, then materialized at `dest` (for a step on this machine).
    ToLocal {
        from: Arc<dyn Runner>,
        output: String,
        digest: Digest,
        dest: PathBuf,
    },
    /// Into the store of the runner the step runs on.
    ToRunner {
        from: Arc<dyn Runner>,
        output: String,
        files: Vec<KeptFile>,
    },
}

/// Does the preps of one job on `target`; returns the bytes moved.
pub(crate) fn prepare(preps: &[Prep], cas: &Cas, target: &dyn Runner) -> Result<u64, String> {
    let mut moved = 0;
    for prep in preps {
        match prep {
            Prep::ToLocal {
                from,
                output,
                digest,
                dest,
            } => {
                let what = |e: String| {
                    format!(
                        "bringing output {output} from runner `{}` here: {e}",
                        from.name()
                    )
                };
                let store = from
                    .blob_store()
                    .ok_or_else(|| what("it keeps no outputs".into()))?;
                moved += into_cas(cas, store, from.name(), digest).map_err(what)?;
                cas.materialize(digest, dest)
                    .map_err(|e| what(e.to_string()))?;
            }
            Prep::ToRunner {
                from,
                output,
                files,
            } => {
                let what = |e: String| {
                    format!(
                        "moving output {output} from runner `{}` to runner `{}`: {e}",
                        from.name(),
                        target.name()
                    )
                };
                let (Some(src), Some(dst)) = (from.blob_store(), target.blob_store()) else {
                    return Err(what("one of them keeps no outputs".into()));
                };
                moved += between(src, dst, files).map_err(what)?;
            }
        }
    }
    Ok(moved)
}

/// Brings the blob or tree `digest` from a runner's store into the local one (the blobs it
/// lacks); returns the bytes moved.
fn into_cas(cas: &Cas, store: &dyn BlobStore, from: &str, digest: &Digest) -> Result<u64, String> {
    let wanted: Vec<(Digest, bool)> = if digest.kind() == DigestKind::Blob {
        vec![(*digest, false)]
    } else {
        let tree = cas.tree(digest).map_err(|e| e.to_string())?;
        tree.files
            .iter()
            .map(|f| (f.digest, f.executable))
            .collect()
    };
    let mut session: Option<Box<dyn BlobSession>> = None;
    let mut moved = 0;
    for (d, executable) in wanted {
        if cas.contains(&d) {
            continue;
        }
        let s = match &mut session {
            Some(s) => s,
            None => session.insert(store.session().map_err(|e| e.to_string())?),
        };
        let mut reader = s.open(&d.hex()).map_err(|e| e.to_string())?;
        moved += cas
            .put_reader(&d, executable, &mut reader, &format!("runner `{from}`"))
            .map_err(|e| e.to_string())?;
    }
    Ok(moved)
}

/// Copies the blobs of `files` that `dst` lacks from `src`, one stream each (read from one
/// session, written into the other); returns the bytes moved.
pub(crate) fn between(
    src: &dyn BlobStore,
    dst: &dyn BlobStore,
    files: &[KeptFile],
) -> Result<u64, String> {
    let mut hexes: Vec<String> = files.iter().map(|f| f.hex.clone()).collect();
    hexes.sort();
    hexes.dedup();
    let lacking = dst
        .missing(&hexes, CHECK_TIMEOUT)
        .map_err(|e| e.to_string())?;
    if lacking.is_empty() {
        return Ok(0);
    }
    let mut from = src.session().map_err(|e| e.to_string())?;
    let mut to = dst.session().map_err(|e| e.to_string())?;
    let mut moved = 0;
    for hex in &lacking {
        let executable = files.iter().any(|f| &f.hex == hex && f.executable);
        let mut reader = from.open(hex).map_err(|e| e.to_string())?;
        moved += to
            .put(hex, executable, &mut reader)
            .map_err(|e| e.to_string())?;
    }
    Ok(moved)
}

/// Writes the output `digest` kept in `store` to `dest` on this machine (a folder for a tree),
/// checking every file's digest; returns the bytes written.
pub(crate) fn pull(
    cas: &Cas,
    store: &dyn BlobStore,
    digest: &Digest,
    dest: &Path,
) -> Result<u64, String> {
    let listing = listing(cas, digest)?;
    let mut session = store.session().map_err(|e| e.to_string())?;
    let mut total = 0;
    if listing.dir {
        std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        for d in &listing.empty_dirs {
            let p = dest.join(d);
            std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    for f in &listing.files {
        let target = if f.path.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&f.path)
        };
        let mut reader = session.open(&f.hex).map_err(|e| e.to_string())?;
        total += tuna_runners::write_verified(&mut reader, &target, &f.hex, f.executable)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use tuna_runners::{KeptFile, KeptOutput};

    use crate::cas::Cas;

    /// A folder kept on a runner gets the digest the local store gives the same folder, so
    /// cache keys do not depend on where an output is kept.
    #[test]
    fn a_kept_folder_has_the_digest_of_the_same_folder_stored_here() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("adapter");
        std::fs::create_dir_all(out.join("sub")).unwrap();
        std::fs::create_dir_all(out.join("empty")).unwrap();
        std::fs::write(out.join("sub/w.bin"), b"weights").unwrap();
        std::fs::write(out.join("a.json"), b"{}").unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let file = |path: &str, bytes: &[u8]| KeptFile {
            path: path.into(),
            hex: blake3::hash(bytes).to_hex().to_string(),
            size: bytes.len() as u64,
            executable: false,
        };
        let kept = KeptOutput {
            dir: true,
            files: vec![file("a.json", b"{}"), file("sub/w.bin", b"weights")],
            empty_dirs: vec!["empty".into()],
        };
        let remote = super::record(&cas, &kept).unwrap();
        // Only the manifest is here: the files are on the runner.
        assert!(cas.tree(&remote).is_ok() && !cas.contains(&remote));
        assert_eq!(super::listing(&cas, &remote).unwrap(), kept);
        assert_eq!(cas.put(&out, dir.path()).unwrap(), remote);
        assert!(cas.contains(&remote));
        let single = KeptOutput {
            dir: false,
            files: vec![file("", b"weights")],
            empty_dirs: vec![],
        };
        assert_eq!(
            super::record(&cas, &single).unwrap(),
            cas.put(&out.join("sub/w.bin"), dir.path()).unwrap()
        );
    }
}
