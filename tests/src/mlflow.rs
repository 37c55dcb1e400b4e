//! A real MLflow tracking server for tests: `mlflow server` (`.venv-mlflow`, made by
//! scripts/setup-mlflow.sh) on 127.0.0.1 and a free port with a SQLite store and its artifact
//! proxy (`--serve-artifacts`) over a temporary folder, in its own process group. It starts slowly, so a test process shares one
//! ([`Mlflow::shared`]); tests keep apart by experiment name. The group is stopped on drop, and
//! the shared one when the test process exits: a small `sh` at the head of the group waits on a
//! pipe held by this process and, at its end of file, signals the whole group. Helpers read
//! what tuna logged through MLflow's own REST API.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// A running MLflow tracking server.
pub struct Mlflow {
    dir: tempfile::TempDir,
    child: Mutex<Option<(Child, ChildStdin)>>,
    pub port: u16,
    http: reqwest::blocking::Client,
}

/// The `mlflow` program of the workspace's `.venv-mlflow`.
fn mlflow_bin() -> PathBuf {
    let bin = crate::workspace_root().join(".venv-mlflow/bin/mlflow");
    assert!(
        bin.exists(),
        "the tracking tests need MLflow in .venv-mlflow: run scripts/setup-mlflow.sh"
    );
    bin
}

/// Stops the group when the pipe on its stdin closes (this process ended or dropped it).
const WATCH: &str = r#""$@" & read -r _; kill -TERM 0"#;

impl Mlflow {
    /// The server shared by this test process, started on first use.
    pub fn shared() -> &'static Mlflow {
        static ONE: OnceLock<Mlflow> = OnceLock::new();
        ONE.get_or_init(Mlflow::start)
    }

    /// Starts a server on a free port and waits until `/health` answers.
    pub fn start() -> Mlflow {
        let bin = mlflow_bin();
        let dir = tempfile::Builder::new()
            .prefix("tuna-mlflow-")
            .tempdir()
            .expect("tempdir");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        for _ in 0..5 {
            let port = TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let m = Mlflow {
                child: Mutex::new(None),
                port,
                http: http.clone(),
                dir: tempfile::Builder::new()
                    .prefix("tuna-mlflow-")
                    .tempdir_in(dir.path())
                    .expect("tempdir"),
            };
            if m.launch(&bin) {
                return m;
            }
            eprintln!("mlflow did not start on {port}: {}", m.log());
        }
        panic!("mlflow server did not start");
    }

    fn launch(&self, bin: &PathBuf) -> bool {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("mlflow.log")).expect("mlflow.log");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCH)
            .arg("sh")
            .arg(bin)
            .args(["server", "--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", d.join("mlflow.db").display()))
            .arg("--serve-artifacts")
            .arg("--artifacts-destination")
            .arg(d.join("artifacts"))
            .args(["--workers", "1"])
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start mlflow server");
        let stdin = child.stdin.take().expect("stdin pipe");
        *self.child.lock().unwrap() = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some((c, _)) = self.child.lock().unwrap().as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.stop();
                return false;
            }
            let up = self
                .http
                .get(format!("{}/health", self.uri()))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if up {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        false
    }

    /// Starts a stopped server again on its port with its store (what it had is kept).
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.launch(&mlflow_bin()) {
            assert!(
                Instant::now() < deadline,
                "mlflow did not start again on {}: {}",
                self.port,
                self.log()
            );
        }
    }

    /// `http://127.0.0.1:PORT`, an `MLFLOW_TRACKING_URI`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mlflow.log")).unwrap_or_default()
    }

    /// Stops the whole process group (the server and its workers).
    pub fn stop(&self) {
        let Some((mut child, mut stdin)) = self.child.lock().unwrap().take() else {
            return;
        };
        let _ = stdin.write_all(b"\n");
        drop(stdin);
        let group = Pid::from_raw(child.id() as i32);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                let _ = killpg(group, Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }

    /// POST `/api/2.0/mlflow/ENDPOINT`; panics with the answer unless it is 200.
    pub fn post(&self, endpoint: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(format!("{}/api/2.0/mlflow/{endpoint}", self.uri()))
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("mlflow {endpoint}: {e}"));
        let status = r.status();
        let text = r.text().unwrap_or_default();
        assert!(status.is_success(), "mlflow {endpoint}: {status} {text}");
        serde_json::from_str(&text).expect("json")
    }

    /// GET `/api/2.0/mlflow/ENDPOINT?QUERY`.
    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/api/2.0/mlflow/{endpoint}", self.uri()))
            .query(query)
            .send()
            .unwrap_or_else(|e| panic!("mlflow {endpoint}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The id of experiment `name`, if it exists.
    pub fn experiment(&self, name: &str) -> Option<String> {
        let (status, v) = self.get("experiments/get-by-name", &[("experiment_name", name)]);
        (status == 200).then(|| {
            v["experiment"]["experiment_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
    }

    /// Every run of experiment `name` (none when it does not exist).
    pub fn runs(&self, name: &str) -> Vec<Value> {
        let Some(id) = self.experiment(name) else {
            return Vec::new();
        };
        let v = self.post(
            "runs/search",
            &json!({ "experiment_ids": [id], "max_results": 1000 }),
        );
        v["runs"].as_array().cloned().unwrap_or_default()
    }

    /// Every point of metric `key` of run `run`, as `(step, value)`, in the server's order.
    pub fn history(&self, run: &str, key: &str) -> Vec<(u64, f64)> {
        let (status, v) = self.get(
            "metrics/get-history",
            &[
                ("run_id", run),
                ("metric_key", key),
                ("max_results", "25000"),
            ],
        );
        assert_eq!(status, 200, "get-history {key}: {v}");
        v["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["step"].as_u64().unwrap_or(0),
                    m["value"].as_f64().unwrap(),
                )
            })
            .collect()
    }
}

/// A run's tag, param or status from a `runs/search` answer.
pub fn tag<'a>(run: &'a Value, key: &str) -> Option<&'a str> {
    find(&run["data"]["tags"], key)
}

pub fn param<'a>(run: &'a Value, key: &str) -> Option<&'a str> {
    find(&run["data"]["params"], key)
}

pub fn status(run: &Value) -> &str {
    run["info"]["status"].as_str().unwrap_or_default()
}

pub fn run_id(run: &Value) -> &str {
    run["info"]["run_id"].as_str().unwrap_or_default()
}

fn find<'a>(list: &'a Value, key: &str) -> Option<&'a str> {
    list.as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        self.stop();
    }
}
