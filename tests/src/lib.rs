//! The test harness for tuna's end-to-end tests: a temporary project with its own tuna home,
//! and the real `tuna` binary driven as a user would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod fake_runner;
mod http;
pub mod mlflow;
pub mod moto;
pub mod proxy;
pub mod ray;
pub mod sshd;

/// The `tuna` binary of this workspace, built (once per test process) if needed.
pub fn tuna_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "tuna", "--bins"])
            .current_dir(&root)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the tuna binaries failed");
        let exe = std::env::current_exe().expect("test exe");
        // target/debug/deps/e2e-… → target/debug/tuna
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("tuna");
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    })
}

/// `tuna-ml` (tuna-steps with the `torch` feature, linking libtorch from the workspace's
/// `.venv`), built once per test process beside `tuna`, where `tuna` finds it.
pub fn tuna_ml_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        assert!(
            root.join(".venv/lib/python3.11/site-packages/torch")
                .exists(),
            "the ML end-to-end tests need libtorch from .venv: run scripts/setup-venv.sh"
        );
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "tuna-steps",
                "--features",
                "torch",
                "--bins",
            ])
            .current_dir(&root)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building tuna-ml failed");
        let bin = tuna_bin().with_file_name("tuna-ml");
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    })
}

/// The workspace's root folder (for `workflows/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A temporary project folder with its own tuna home.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("tuna-e2e-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join(".tuna")
    }

    /// Writes a file (parents created).
    pub fn file(&self, rel: &str, contents: &str) -> &Self {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, contents).expect("write");
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// A `tuna` command in this project, with its home, plain progress and no user inventory.
    pub fn tuna(&self) -> Command {
        let mut c = Command::new(tuna_bin());
        c.current_dir(self.root())
            .env("TUNA_HOME", self.home())
            .env_remove("TUNA_RUNNERS")
            .env("HOME", self.root())
            .env("NO_COLOR", "1")
            // No export to a tracking server the developer's shell names.
            .env_remove("MLFLOW_TRACKING_URI")
            .env_remove("MLFLOW_EXPERIMENT_NAME")
            .env_remove("MLFLOW_TRACKING_TOKEN")
            .env_remove("MLFLOW_TRACKING_USERNAME")
            .env_remove("MLFLOW_TRACKING_PASSWORD")
            // HELM from scripts/setup-helm.sh, for `helm.eval` steps.
            .env(
                "TUNA_HELM_RUN",
                workspace_root().join(".venv-helm/bin/helm-run"),
            )
            .arg("--progress")
            .arg("plain")
            .stdin(Stdio::null());
        c
    }

    /// Runs `tuna ARGS…` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.tuna().args(args).output().expect("run tuna");
        Run::from(out)
    }

    /// Starts `tuna ARGS…` without waiting.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.tuna()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tuna")
    }

    /// `tuna status RUN --json`.
    pub fn status(&self, run: &str) -> serde_json::Value {
        let r = self.run(&["status", run, "--json"]);
        assert_eq!(r.code, 0, "status failed: {}", r.stderr);
        serde_json::from_str(&r.stdout).expect("status json")
    }

    /// Each step's status in a run.
    pub fn step_statuses(&self, run: &str) -> Vec<(String, String)> {
        let v = self.status(run);
        v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn step_status(&self, run: &str, step: &str) -> String {
        self.step_statuses(run)
            .into_iter()
            .find(|(n, _)| n == step)
            .map(|(_, s)| s)
            .unwrap_or_default()
    }
}

/// A finished tuna command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The run id `tuna run`/`tuna resume` prints first.
    pub fn run_id(&self) -> String {
        self.stdout
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "tuna failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Starts `cmd` (a `tuna run` or `tuna resume`) with its stdout piped; the child and the first
/// line it prints, the run id.
pub fn spawn_for_id(mut cmd: Command) -> (Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tuna");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("the run id");
    (child, line.trim().to_string())
}

/// Waits until `cond` holds, checking every 20 ms, failing the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child to exit (failing the test after 90 s); its exit code, -1 for a signal.
pub fn wait_exit(child: &mut Child) -> i32 {
    let mut code = None;
    wait_until(Duration::from_secs(90), "tuna to exit", || {
        code = child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
        code.is_some()
    });
    code.unwrap()
}

/// Every regular file under `dir` (links not followed); none when `dir` is not there.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            out.extend(files_under(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
