//! Garbage collection on a host: listing the blobs of `WORKDIR/cas` with their sizes and
//! deleting some (SFTP), listing the attempt folders under `WORKDIR/runs` (SFTP) and deleting
//! some with everything in them (one `rm -rf` per batch). Which ones is the orchestrator's
//! call. Deletions keep their progress in the caller's counters, so that a retry after a
//! broken connection goes on where it stopped.

use std::path::Path;

use ssh2::Sftp;

use super::conn::{Conn, OpError};
use crate::shell::quote;
use crate::{RemoteAttempt, Removed, StoredBlob};

/// Whether `name` is a blob's name: 64 lower-case hex digits.
fn is_blob_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` can be one path component of an attempt folder (no `/`, not `.` or `..`).
fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

fn not_found(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::SFTP(2)
}

/// The entries of the remote folder `dir` that are folders (by name), or files with their
/// stat; `.` and `..` left out. A folder that is not there has none.
fn entries(sftp: &Sftp, dir: &str) -> Result<Vec<(String, ssh2::FileStat)>, OpError> {
    let listed = match sftp.readdir(Path::new(dir)) {
        Ok(l) => l,
        Err(e) if not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(listed
        .into_iter()
        .filter_map(|(p, st)| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            is_component(&name).then_some((name, st))
        })
        .collect())
}

/// Every blob in the store folder `cas`, sorted by name.
pub(crate) fn list_blobs(conn: &mut Conn, cas: &str) -> Result<Vec<StoredBlob>, OpError> {
    let sftp = conn.sftp()?;
    let mut blobs: Vec<StoredBlob> = entries(sftp, cas)?
        .into_iter()
        .filter(|(name, st)| is_blob_name(name) && st.is_file())
        .map(|(hex, st)| StoredBlob {
            hex,
            size: st.size.unwrap_or(0),
        })
        .collect();
    blobs.sort_by(|a, b| a.hex.cmp(&b.hex));
    Ok(blobs)
}

/// Deletes the blobs `hexes[*next..]` from `cas`, counting into `done`.
pub(crate) fn remove_blobs(
    conn: &mut Conn,
    cas: &str,
    hexes: &[String],
    next: &mut usize,
    done: &mut Removed,
) -> Result<(), OpError> {
    if let Some(bad) = hexes.iter().find(|h| !is_blob_name(h)) {
        return Err(OpError::Fatal(format!("`{bad}` is not a blob's name")));
    }
    let sftp = conn.sftp()?;
    while let Some(hex) = hexes.get(*next) {
        let path = format!("{cas}/{hex}");
        let path = Path::new(&path);
        match sftp.lstat(path) {
            Ok(st) => match sftp.unlink(path) {
                Ok(()) => {
                    done.blobs += 1;
                    done.bytes += st.size.unwrap_or(0);
                }
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(sftp_error(e, "deleting", path)),
            },
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(sftp_error(e, "looking at", path)),
        }
        *next += 1;
    }
    Ok(())
}

/// A failed SFTP call: a broken transport is worth a retry, a refusal (permissions) is not.
fn sftp_error(e: ssh2::Error, doing: &str, path: &Path) -> OpError {
    match e.code() {
        ssh2::ErrorCode::SFTP(_) => {
            OpError::Fatal(format!("{doing} {} on the host: {e}", path.display()))
        }
        ssh2::ErrorCode::Session(_) => e.into(),
    }
}

/// Every attempt folder `runs/RUN/STEP/ATTEMPT`, sorted.
pub(crate) fn list_attempts(conn: &mut Conn, runs: &str) -> Result<Vec<RemoteAttempt>, OpError> {
    let sftp = conn.sftp()?;
    let mut found = Vec::new();
    for (run, st) in entries(sftp, runs)? {
        if !st.is_dir() {
            continue;
        }
        for (step, st) in entries(sftp, &format!("{runs}/{run}"))? {
            if !st.is_dir() {
                continue;
            }
            for (attempt, st) in entries(sftp, &format!("{runs}/{run}/{step}"))? {
                if st.is_dir() {
                    found.push(RemoteAttempt {
                        run: run.clone(),
                        step: step.clone(),
                        attempt,
                    });
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// How many attempt folders one remote command deletes.
const BATCH: usize = 100;

/// Deletes the attempt folders `attempts[*next..]` under `runs` (then their step and run
/// folders where those are left empty), counting those that were there into `removed`.
pub(crate) fn remove_attempts(
    conn: &mut Conn,
    runs: &str,
    attempts: &[RemoteAttempt],
    next: &mut usize,
    removed: &mut usize,
) -> Result<(), OpError> {
    if let Some(bad) = attempts
        .iter()
        .find(|a| !(is_component(&a.run) && is_component(&a.step) && is_component(&a.attempt)))
    {
        return Err(OpError::Fatal(format!(
            "`{}` is not an attempt folder",
            bad.rel()
        )));
    }
    while *next < attempts.len() {
        let batch = &attempts[*next..(*next + BATCH).min(attempts.len())];
        let dirs: Vec<String> = batch.iter().map(|a| quote(&a.rel())).collect();
        let mut parents: Vec<String> = batch
            .iter()
            .map(|a| format!("{}/{}", a.run, a.step))
            .collect();
        parents.sort();
        parents.dedup();
        let mut run_dirs: Vec<String> = batch.iter().map(|a| a.run.clone()).collect();
        run_dirs.sort();
        run_dirs.dedup();
        parents.extend(run_dirs);
        let parents: Vec<String> = parents.iter().map(|p| quote(p)).collect();
        // A folder a job made read-only is made writable again before it goes.
        let command = format!(
            "cd {} || exit 1; for d in {}; do if [ -e \"$d\" ]; then \
             {{ rm -rf -- \"$d\" 2>/dev/null || {{ chmod -R u+w -- \"$d\" && rm -rf -- \"$d\"; }}; }} \
             || exit 1; echo gone; fi; done; for p in {}; do rmdir -- \"$p\" 2>/dev/null; done; true",
            quote(runs),
            dirs.join(" "),
            parents.join(" ")
        );
        let out = conn.exec(&command)?;
        if out.code != 0 {
            return Err(OpError::Fatal(format!(
                "deleting attempt folders under {runs}: {}",
                out.stderr.trim()
            )));
        }
        *removed += out.stdout.lines().filter(|l| *l == "gone").count();
        *next += batch.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_blob_name, is_component};

    #[test]
    fn only_hex_names_are_blobs_and_only_plain_names_are_folders() {
        assert!(is_blob_name(&"a".repeat(64)));
        assert!(!is_blob_name(&"A".repeat(64)));
        assert!(!is_blob_name(&format!(".up-{}", "a".repeat(60))));
        assert!(!is_blob_name(&format!("{}.tmp-1-2", "a".repeat(64))));
        assert!(is_component("20240101-000000-abcd"));
        for bad in ["", ".", "..", "a/b"] {
            assert!(!is_component(bad), "{bad}");
        }
    }
}
