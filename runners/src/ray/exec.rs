//! The wrapper around each step on a Ray node (`tuna ray-exec SHARED DIR`, the job's
//! entrypoint): places the attempt's inputs from the shared folder's blobs, runs
//! `bash -euo pipefail -c SCRIPT` in `DIR/work` with the job's environment (Ray set it from
//! `runtime_env.env_vars`), and after a success puts the declared outputs into the shared
//! blobs and lists them in `DIR/outputs.json`. It always ends by writing `DIR/exit.json` and
//! exits with the script's code, which Ray reports as the job's `driver_exit_code`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::shared::{JobSpec, Shared};
use crate::local::ExitRecord;
use crate::{KeptFile, KeptOutput, Outcome};

/// The file listing the outputs put into the shared blobs (output → its files).
pub const OUTPUTS: &str = "outputs.json";
/// The spec the runner writes before it submits the job.
pub const SPEC: &str = "job.json";
/// How the attempt ended.
pub const EXIT: &str = "exit.json";

/// Runs the attempt in `dir`; the exit code for the process.
pub fn ray_exec(shared: &Path, dir: &Path) -> i32 {
    match run(&Shared::new(shared), dir) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tuna ray-exec: {e}");
            let _ = write_exit(dir, Outcome::Exited { code: 127 }, now_ms(), None);
            127
        }
    }
}

fn run(shared: &Shared, dir: &Path) -> io::Result<i32> {
    let started = now_ms();
    let text = fs::read(dir.join(SPEC))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(SPEC).display())))?;
    let spec: JobSpec = serde_json::from_slice(&text).map_err(io::Error::other)?;
    for d in &spec.dirs {
        fs::create_dir_all(dir.join(d))?;
    }
    for f in &spec.files {
        shared.place(&f.hex, &dir.join(&f.dest), f.executable)?;
    }
    let work = dir.join("work");
    fs::create_dir_all(&work)?;
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &spec.script])
        .current_dir(&work)
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let status = child.wait()?;
    let (outcome, code) = match (status.code(), status.signal()) {
        (Some(c), _) => (Outcome::Exited { code: c }, c),
        (None, Some(s)) => (Outcome::Signaled { signal: s }, 128 + s),
        (None, None) => (Outcome::Exited { code: 1 }, 1),
    };
    if code == 0 {
        let mut listed = BTreeMap::new();
        for out in &spec.outputs {
            let rel = out.trim_end_matches('/');
            if let Some(kept) = put_output(shared, &work.join(rel))? {
                listed.insert(out.clone(), kept);
            }
        }
        let bytes = serde_json::to_vec_pretty(&listed).map_err(io::Error::other)?;
        write_atomic(&dir.join(OUTPUTS), &bytes)?;
    }
    write_exit(dir, outcome, started, Some(pid))?;
    Ok(code)
}

/// Puts one output (a regular file, or a folder walked without following links) into the
/// shared blobs; `None` when the step did not make it.
fn put_output(shared: &Shared, path: &Path) -> io::Result<Option<KeptOutput>> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(None);
    };
    let mut kept = KeptOutput {
        dir: meta.is_dir(),
        ..KeptOutput::default()
    };
    if meta.is_file() {
        kept.files
            .push(put_file(shared, path, String::new(), &meta)?);
    } else if meta.is_dir() {
        walk(shared, path, "", &mut kept)?;
    } else {
        return Ok(None);
    }
    kept.files.sort_by(|a, b| a.path.cmp(&b.path));
    kept.empty_dirs.sort();
    Ok(Some(kept))
}

fn walk(shared: &Shared, dir: &Path, rel: &str, kept: &mut KeptOutput) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    if entries.is_empty() && !rel.is_empty() {
        kept.empty_dirs.push(rel.to_owned());
    }
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let sub = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // Links and special files are left out: only what the step wrote travels.
        let meta = fs::symlink_metadata(e.path())?;
        if meta.is_dir() {
            walk(shared, &e.path(), &sub, kept)?;
        } else if meta.is_file() {
            kept.files.push(put_file(shared, &e.path(), sub, &meta)?);
        }
    }
    Ok(())
}

fn put_file(
    shared: &Shared,
    path: &Path,
    rel: String,
    meta: &fs::Metadata,
) -> io::Result<KeptFile> {
    use std::os::unix::fs::PermissionsExt;
    Ok(KeptFile {
        hex: shared.put(path)?,
        path: rel,
        size: meta.len(),
        executable: meta.permissions().mode() & 0o111 != 0,
    })
}

fn write_exit(dir: &Path, outcome: Outcome, started_ms: u64, pid: Option<u32>) -> io::Result<()> {
    let record = ExitRecord {
        outcome,
        started_ms,
        ended_ms: now_ms(),
        child_pid: pid,
    };
    let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
    write_atomic(&dir.join(EXIT), &bytes)
}

/// Writes `path` through a temporary name, so a reader never sees half of it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("part-{}", std::process::id()));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
