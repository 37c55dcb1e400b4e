//! The wrapper around each step on a Ray node (`tuna ray-exec STORE DIR`, the job's
//! entrypoint): places the attempt's inputs from the runner's blobs, runs
//! `bash -euo pipefail -c SCRIPT` in `DIR/work` with the job's environment (Ray set it from
//! `runtime_env.env_vars`), and after a success puts the declared outputs into the blobs and
//! lists them in `outputs.json`. It always ends by writing `exit.json` and exits with the
//! script's code, which Ray reports as the job's `driver_exit_code`. `STORE` is the shared
//! folder (`DIR` is then the attempt folder in it, where the records go) or an `s3://` URL
//! (`DIR` is then a folder of the node's own, removed at the end; the spec and records are
//! objects of the bucket: `node.rs`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::node::{BucketNode, Node, SharedNode};
use super::shared::Shared;
use crate::local::ExitRecord;
use crate::redact::Redactor;
use crate::{KeptFile, KeptOutput, Outcome};

/// The file listing the outputs put into the blobs (output → its files).
pub const OUTPUTS: &str = "outputs.json";
/// The spec the runner writes before it submits the job.
pub const SPEC: &str = "job.json";
/// How the attempt ended.
pub const EXIT: &str = "exit.json";
/// The step's metrics (`$TUNA_METRICS`).
pub const METRICS: &str = "metrics.json";
/// The values of the step's secrets (a shared folder only), 0600, removed by the wrapper
/// before the script starts and by the runner when the job ends.
pub const SECRETS: &str = "secrets.json";
/// Written by the runner when it gave the job up (it waited too long for resources): a
/// wrapper that starts after that runs nothing.
pub const ABANDONED: &str = "abandoned";

/// What `tuna ray-exec` was given.
#[derive(Debug, Clone, Default)]
pub struct ExecArgs {
    /// The shared folder, or the bucket's `s3://BUCKET/PREFIX`.
    pub store: String,
    /// The attempt folder (in the shared folder, or the node's own for a bucket).
    pub dir: PathBuf,
    /// Bucket only: the server's URL and region (never credentials: those come from the
    /// node's environment).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Bucket only: `RUN/STEP/ATTEMPT`, where the attempt's records are.
    pub attempt: Option<String>,
    /// The runner's name, for messages.
    pub runner: Option<String>,
}

/// Runs the attempt; the exit code for the process.
pub fn ray_exec(args: &ExecArgs) -> i32 {
    if args.store.starts_with("s3://") {
        let node = match BucketNode::open(args) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("tuna ray-exec: {e}");
                return 127;
            }
        };
        let code = exec(&node, &args.dir);
        // The node's folder is its own: nothing of it is needed once the records are up (the
        // step and run folders above it go too once empty).
        let _ = fs::remove_dir_all(&args.dir);
        for up in args.dir.ancestors().skip(1).take(2) {
            let _ = fs::remove_dir(up);
        }
        code
    } else {
        let node = SharedNode {
            shared: Shared::new(&args.store),
            dir: args.dir.clone(),
        };
        exec(&node, &args.dir)
    }
}

fn exec(node: &dyn Node, dir: &Path) -> i32 {
    match run(node, dir) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tuna ray-exec: {e}");
            let _ = write_exit(node, Outcome::Exited { code: 127 }, now_ms(), None);
            127
        }
    }
}

fn run(node: &dyn Node, dir: &Path) -> io::Result<i32> {
    let started = now_ms();
    if node.abandoned()? {
        eprintln!("tuna ray-exec: tuna gave this job up before it started; nothing runs");
        write_exit(node, Outcome::Cancelled, started, None)?;
        return Ok(130);
    }
    let spec = node.spec()?;
    for d in &spec.dirs {
        fs::create_dir_all(dir.join(d))?;
    }
    for f in &spec.files {
        node.place(&f.hex, &dir.join(&f.dest), f.executable)?;
    }
    let secrets = node.take_secrets()?;
    let work = dir.join("work");
    fs::create_dir_all(&work)?;
    let values: Vec<Vec<u8>> = secrets
        .values()
        .filter(|v| v.len() >= crate::redact::MIN_LEN)
        .map(|v| v.as_bytes().to_vec())
        .collect();
    let piped = || {
        if values.is_empty() {
            Stdio::inherit()
        } else {
            Stdio::piped()
        }
    };
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &spec.script])
        .current_dir(&work)
        .envs(&secrets)
        .stdin(Stdio::null())
        .stdout(piped())
        .stderr(piped())
        .spawn()?;
    drop(secrets);
    // Ray keeps what the wrapper prints as the job's logs: a secret is masked first.
    let pumps = [
        child.stdout.take().map(|o| mask(o, io::stdout(), &values)),
        child.stderr.take().map(|e| mask(e, io::stderr(), &values)),
    ];
    let pid = child.id();
    let status = child.wait()?;
    for p in pumps.into_iter().flatten() {
        let _ = p.join();
    }
    let (outcome, code) = match (status.code(), status.signal()) {
        (Some(c), _) => (Outcome::Exited { code: c }, c),
        (None, Some(s)) => (Outcome::Signaled { signal: s }, 128 + s),
        (None, None) => (Outcome::Exited { code: 1 }, 1),
    };
    if code == 0 {
        let mut listed = BTreeMap::new();
        for out in &spec.outputs {
            let rel = out.trim_end_matches('/');
            if let Some(kept) = put_output(node, &work.join(rel))? {
                listed.insert(out.clone(), kept);
            }
        }
        let bytes = serde_json::to_vec_pretty(&listed).map_err(io::Error::other)?;
        node.record(OUTPUTS, &bytes)?;
    }
    node.metrics(&dir.join(METRICS))?;
    write_exit(node, outcome, started, Some(pid))?;
    Ok(code)
}

/// Copies `from` to `to` with every value in `values` masked, on a thread of its own.
fn mask(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    values: &[Vec<u8>],
) -> std::thread::JoinHandle<()> {
    let mut redactor = Redactor::new(values.iter().cloned());
    std::thread::spawn(move || redactor.copy(&mut from, &mut to))
}

/// Puts one output (a regular file, or a folder walked without following links) into the
/// blobs; `None` when the step did not make it.
fn put_output(node: &dyn Node, path: &Path) -> io::Result<Option<KeptOutput>> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(None);
    };
    let mut kept = KeptOutput {
        dir: meta.is_dir(),
        ..KeptOutput::default()
    };
    if meta.is_file() {
        kept.files.push(put_file(node, path, String::new(), &meta)?);
    } else if meta.is_dir() {
        walk(node, path, "", &mut kept)?;
    } else {
        return Ok(None);
    }
    kept.files.sort_by(|a, b| a.path.cmp(&b.path));
    kept.empty_dirs.sort();
    Ok(Some(kept))
}

fn walk(node: &dyn Node, dir: &Path, rel: &str, kept: &mut KeptOutput) -> io::Result<()> {
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
            walk(node, &e.path(), &sub, kept)?;
        } else if meta.is_file() {
            kept.files.push(put_file(node, &e.path(), sub, &meta)?);
        }
    }
    Ok(())
}

fn put_file(
    node: &dyn Node,
    path: &Path,
    rel: String,
    meta: &fs::Metadata,
) -> io::Result<KeptFile> {
    use std::os::unix::fs::PermissionsExt;
    Ok(KeptFile {
        hex: node.put(path)?,
        path: rel,
        size: meta.len(),
        executable: meta.permissions().mode() & 0o111 != 0,
    })
}

fn write_exit(
    node: &dyn Node,
    outcome: Outcome,
    started_ms: u64,
    pid: Option<u32>,
) -> io::Result<()> {
    let record = ExitRecord {
        outcome,
        started_ms,
        ended_ms: now_ms(),
        child_pid: pid,
    };
    let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
    node.record(EXIT, &bytes)
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
    use super::super::shared::JobSpec;
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

    fn shared_args(shared: &Path, dir: &Path) -> ExecArgs {
        ExecArgs {
            store: shared.to_string_lossy().into_owned(),
            dir: dir.to_path_buf(),
            ..ExecArgs::default()
        }
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
        assert_eq!(ray_exec(&shared_args(t.path(), &dir)), 0);
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
        assert_eq!(ray_exec(&shared_args(t.path(), &dir)), 7);
        assert_eq!(exit(&dir).outcome, Outcome::Exited { code: 7 });
        assert!(!dir.join(OUTPUTS).exists());
    }

    #[test]
    fn an_abandoned_job_runs_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/r/s/1");
        spec(&dir, "touch ran", &[]);
        fs::write(dir.join(ABANDONED), "").unwrap();
        assert_eq!(ray_exec(&shared_args(t.path(), &dir)), 130);
        assert_eq!(exit(&dir).outcome, Outcome::Cancelled);
        assert!(!dir.join("work/ran").exists());
    }
}
