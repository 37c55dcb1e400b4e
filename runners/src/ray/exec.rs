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
/// Written by the runner when it gave the job up (it waited too long for resources): a
/// wrapper that starts after that runs nothing.
pub const ABANDONED: &str = "abandoned";

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
    if dir.join(ABANDONED).exists() {
        eprintln!("tuna ray-exec: tuna gave this job up before it started; nothing runs");
        write_exit(dir, Outcome::Cancelled, started, None)?;
        return Ok(130);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str, outputs: &[&str]) {
        let spec = JobSpec {
            script: script.into(),
            files: Vec::new(),
            dirs: Vec::new(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        };
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(SPEC), serde_json::to_vec(&spec).unwrap()).unwrap();
    }

    fn exit(dir: &Path) -> ExitRecord {
        serde_json::from_slice(&fs::read(dir.join(EXIT)).unwrap()).unwrap()
    }

    #[test]
    fn the_wrapper_runs_the_script_and_lists_its_outputs_by_digest() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/r/s/1");
        spec(
            &dir,
            "echo hi > a.txt; mkdir -p d/e; ln -s /etc/passwd d/link",
            &["a.txt", "d/"],
        );
        assert_eq!(ray_exec(t.path(), &dir), 0);
        assert_eq!(exit(&dir).outcome, Outcome::Exited { code: 0 });
        let listed: BTreeMap<String, KeptOutput> =
            serde_json::from_slice(&fs::read(dir.join(OUTPUTS)).unwrap()).unwrap();
        let hex = blake3::hash(b"hi\n").to_hex().to_string();
        assert_eq!(listed["a.txt"].files[0].hex, hex);
        assert!(t.path().join("cas").join(&hex).exists());
        // Links are left out of outputs; empty folders are kept.
        assert!(listed["d/"].files.is_empty(), "{:?}", listed["d/"]);
        assert_eq!(listed["d/"].empty_dirs, vec!["e".to_string()]);
    }

    #[test]
    fn a_failing_script_gives_its_code_and_no_outputs() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/r/s/1");
        spec(&dir, "echo x > a.txt; exit 7", &["a.txt"]);
        assert_eq!(ray_exec(t.path(), &dir), 7);
        assert_eq!(exit(&dir).outcome, Outcome::Exited { code: 7 });
        assert!(!dir.join(OUTPUTS).exists());
    }

    #[test]
    fn an_abandoned_job_runs_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/r/s/1");
        spec(&dir, "touch ran", &[]);
        fs::write(dir.join(ABANDONED), "").unwrap();
        assert_eq!(ray_exec(t.path(), &dir), 130);
        assert_eq!(exit(&dir).outcome, Outcome::Cancelled);
        assert!(!dir.join("work/ran").exists());
    }
}
