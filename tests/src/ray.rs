//! A real Ray cluster for tests: one head node (`.venv-ray`, made by scripts/setup-ray.sh) on
//! 127.0.0.1 and free ports, started once per test process ([`cluster`]) in its own process
//! group under a temporary folder, with 2 CPUs, 2 fake GPUs and 2 units of the resource
//! `accelerator_type:A100`, token authentication on with a token of its own, and optionally
//! extra variables in its environment ([`cluster_with_env`]). It is stopped when the test
//! process exits: a small watchdog holds
//! the read end of a pipe whose write end only this process holds, and kills the head's process
//! group and session and removes its folder when that pipe closes.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running Ray head.
pub struct RayCluster {
    /// Where Ray keeps its session (kept until the process exits).
    pub dir: PathBuf,
    /// The dashboard's port: the Jobs REST API.
    pub dashboard_port: u16,
    /// The cluster's token: every request needs `Authorization: Bearer TOKEN`
    /// (Ray's token authentication is on).
    pub token: String,
    /// Its stdin stays open for the life of the test process: the watchdog stops the head when
    /// it closes.
    _watchdog: Mutex<Child>,
}

/// The Ray program, from the workspace's `.venv-ray`.
pub fn ray_bin() -> PathBuf {
    let bin = crate::workspace_root().join(".venv-ray/bin/ray");
    assert!(
        bin.exists(),
        "the Ray tests need Ray in .venv-ray: run scripts/setup-ray.sh"
    );
    bin
}

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static RayCluster {
    cluster_with_env(Vec::new)
}

/// The cluster of this test process, started on first use with the variables `env` gives
/// added to the head's environment, which its workers and so its jobs inherit: what a node's
/// own machine holds (object-store credentials, as an instance role would give). Every caller
/// in one test process must ask for the same variables: the first call decides.
pub fn cluster_with_env(env: impl FnOnce() -> Vec<(String, String)>) -> &'static RayCluster {
    static CLUSTER: OnceLock<RayCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RayCluster::start(&env()))
}

impl RayCluster {
    /// The dashboard's address (`http://127.0.0.1:PORT`), a runner's `address`.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.dashboard_port)
    }

    /// What the head wrote.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("head.log")).unwrap_or_default()
    }

    /// One GET of the dashboard: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.dashboard_port, &self.token, path)
            .unwrap_or_else(|e| panic!("ray GET {path}: {e}\n{}", self.log()))
    }

    /// The status (`RUNNING`, `STOPPED`, ...) of the job `id`, if Ray knows it.
    pub fn job_status(&self, id: &str) -> Option<String> {
        let (code, body) = self.get(&format!("/api/jobs/{id}"));
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["status"].as_str().map(str::to_owned)
    }

    /// The Ray jobs tuna submitted for `(run, step)` (by the metadata it gives each job):
    /// (submission id, status).
    pub fn jobs_of(&self, run: &str, step: &str) -> Vec<(String, String)> {
        let (code, body) = self.get("/api/jobs/");
        assert_eq!(code, 200, "{body}");
        let all: Vec<serde_json::Value> = serde_json::from_str(&body).expect("jobs json");
        all.iter()
            .filter(|j| j["metadata"]["tuna_run"] == run && j["metadata"]["tuna_step"] == step)
            .map(|j| {
                (
                    j["submission_id"].as_str().unwrap_or_default().to_owned(),
                    j["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn start(env: &[(String, String)]) -> RayCluster {
        let bin = ray_bin();
        let mut logs = String::new();
        for _ in 0..3 {
            // Ray's unix sockets live under the temp dir: keep its path short.
            let dir = tempfile::Builder::new()
                .prefix("tuna-ray-")
                .tempdir_in("/tmp")
                .expect("tempdir")
                .keep();
            let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
            let token = format!("{:032x}", rand::random::<u128>());
            match Self::launch(&bin, &dir, &ports, &token, env) {
                Ok(cluster) => return cluster,
                Err(log) => logs.push_str(&log),
            }
        }
        panic!("Ray did not start: {logs}");
    }

    /// Starts a head in `dir` on `ports`; what it wrote if it did not come up.
    fn launch(
        bin: &Path,
        dir: &Path,
        ports: &[u16],
        token: &str,
        env: &[(String, String)],
    ) -> Result<RayCluster, String> {
        let log = fs::File::create(dir.join("head.log")).expect("head.log");
        let p = |i: usize| ports[i].to_string();
        // `setsid` (which execs, keeping the pid) gives the head a session of its own: Ray's
        // workers leave the head's process group but stay in its session.
        let mut child = Command::new("setsid")
            .arg(bin)
            .args(["start", "--head", "--block", "--disable-usage-stats"])
            .args([
                "--node-ip-address",
                "127.0.0.1",
                "--dashboard-host",
                "127.0.0.1",
            ])
            .args(["--port", &p(0), "--dashboard-port", &p(1)])
            .args(["--ray-client-server-port", &p(2)])
            .args(["--dashboard-agent-listen-port", &p(3)])
            .args(["--dashboard-agent-grpc-port", &p(4)])
            .args(["--node-manager-port", &p(5), "--object-manager-port", &p(6)])
            .args(["--runtime-env-agent-port", &p(7)])
            .args(["--num-cpus", "2", "--num-gpus", "2"])
            .args(["--resources", r#"{"accelerator_type:A100": 2}"#])
            .args([
                "--object-store-memory",
                "100000000",
                "--include-dashboard",
                "true",
            ])
            .arg("--temp-dir")
            .arg(dir)
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .env("RAY_JOB_START_TIMEOUT_SECONDS", "20")
            .env("RAY_AUTH_MODE", "token")
            .env("RAY_AUTH_TOKEN", token)
            // Ray keeps state under the home folder: this head's stays in its own folder.
            .env("HOME", dir)
            .env_remove("RAY_ADDRESS")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ray");
        let group = child.id();
        let watchdog = watchdog(dir, group);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            // The dashboard answers before the head's node has registered: wait for both.
            if http(ports[1], token, "/api/version").is_ok_and(|(c, _)| c == 200)
                && http(ports[1], token, "/api/v0/nodes")
                    .is_ok_and(|(c, body)| c == 200 && body.contains("\"ALIVE\""))
            {
                return Ok(RayCluster {
                    dir: dir.to_path_buf(),
                    dashboard_port: ports[1],
                    token: token.to_owned(),
                    _watchdog: Mutex::new(watchdog),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = fs::read_to_string(dir.join("head.log")).unwrap_or_default();
        release(watchdog);
        let _ = child.wait();
        Err(log)
    }
}

/// A shell that waits for its stdin to close (this process exited, or gave up on this head),
/// then stops the head (SIGTERM to its process group: `ray start --block` stops what it
/// started), kills whatever is left in its session and removes the head's folder.
fn watchdog(dir: &Path, session: u32) -> Child {
    let script = "read -r _; kill -TERM -- \"-$1\" 2>/dev/null; \
                  t=0; while [ $t -lt 50 ] && kill -0 \"$1\" 2>/dev/null; do sleep 0.1; t=$((t+1)); done; \
                  pkill -KILL -s \"$1\"; rm -rf \"$2\"; true";
    Command::new("sh")
        .args(["-c", script, "ray-watchdog", &session.to_string()])
        .arg(dir)
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Ray watchdog")
}

/// Lets a watchdog stop a head that did not come up, and waits until it did.
fn release(mut watchdog: Child) {
    drop(watchdog.stdin.take());
    let _ = watchdog.wait();
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One GET with the cluster's token.
fn http(port: u16, token: &str, path: &str) -> std::io::Result<(u16, String)> {
    let auth = format!("Bearer {token}");
    crate::http::request(port, "GET", path, &[("Authorization", &auth)], b"")
}

/// A workflow named `name` whose `train` runs on the runner `ray`: it appends `ran` to `count`,
/// prints `epoch-1`, waits until `gate` exists, prints `epoch-2` and writes `model.txt`, which
/// `eval` (on the default runner) prints. For tests that stop tuna while `train` runs.
pub fn gated_workflow(name: &str, count: &Path, gate: &Path) -> String {
    format!(
        r#"
name: {name}
steps:
  train:
    runs-on: ray
    run: |
      echo ran >> {count}
      echo epoch-1
      while [ ! -e {gate} ]; do sleep 0.05; done
      echo epoch-2
      echo result > model.txt
    outputs: [model.txt]
  eval:
    run: cat ${{{{ steps.train.outputs.model.txt }}}}
"#,
        count = count.display(),
        gate = gate.display()
    )
}
