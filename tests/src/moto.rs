//! A real S3-compatible server for tests: moto's server mode (`.venv-s3`, made by
//! scripts/setup-s3.sh) on 127.0.0.1 and a free port, in its own process group, stopped on
//! drop. Credentials are checked as S3 checks them: the harness creates an IAM user with an
//! access key allowed everything on S3 and the bucket [`BUCKET`], then turns authentication on,
//! so a wrong key or secret is refused with 403 like on AWS. [`shared`] is one server for a
//! whole test process.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The bucket every server starts with.
pub const BUCKET: &str = "tuna-artifacts";
/// The region requests are signed for.
pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct Moto {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    /// An access key allowed everything on S3.
    pub access_key: String,
    pub secret_key: String,
}

/// moto's server program, from the workspace's `.venv-s3`.
fn moto_server() -> PathBuf {
    let bin = crate::workspace_root().join(".venv-s3/bin/moto_server");
    assert!(
        bin.exists(),
        "the object-store tests need moto's server in .venv-s3: run scripts/setup-s3.sh"
    );
    bin
}

/// One server for the whole test process, started on first use (for tests whose other parts
/// must be started knowing its key, such as a Ray head whose jobs use it). It is stopped when
/// the test process exits: a watchdog holds the read end of a pipe only this process writes
/// to, and stops the server's process group and removes its folder when the pipe closes.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<(Moto, Mutex<Child>)> = OnceLock::new();
    &SHARED
        .get_or_init(|| {
            let moto = Moto::start();
            let group = moto.child.as_ref().expect("moto runs").id();
            // pkill: the kill of some shells (dash) takes no `--` before a negative pid.
            let script = "read -r _; pkill -TERM -g \"$1\"; \
                          t=0; while [ $t -lt 50 ] && pgrep -g \"$1\" >/dev/null; do sleep 0.1; t=$((t+1)); done; \
                          pkill -KILL -g \"$1\"; rm -rf \"$2\"; true";
            let watchdog = Command::new("sh")
                .args(["-c", script, "moto-watchdog", &group.to_string()])
                .arg(moto.dir.path())
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto's watchdog");
            (moto, Mutex::new(watchdog))
        })
        .0
}

impl Moto {
    /// Starts moto on a free port, waits until it answers, creates [`BUCKET`] and a user with
    /// an access key, then turns credential checks on.
    pub fn start() -> Moto {
        let bin = moto_server();
        let dir = tempfile::Builder::new()
            .prefix("tuna-moto-")
            .tempdir()
            .expect("tempdir");
        let mut moto = Moto {
            dir,
            child: None,
            port: 0,
            access_key: String::new(),
            secret_key: String::new(),
        };
        for _ in 0..10 {
            moto.port = free_port();
            if moto.launch(&bin) {
                moto.set_up();
                return moto;
            }
        }
        panic!("moto did not start: {}", moto.log());
    }

    /// Starts the server and waits until it answers; false if it exited first.
    fn launch(&mut self, bin: &PathBuf) -> bool {
        let log = fs::File::create(self.dir.path().join("moto.log")).expect("moto.log");
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if self
                .try_request("GET", "/moto-api/", &[], b"")
                .is_ok_and(|(status, _)| status == 200)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// The user, its key, the bucket; then authentication on.
    fn set_up(&mut self) {
        // IAM requests are routed by the service named in the (here unchecked) signature.
        let iam = [(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=setup/20240101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )];
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let headers = [iam[0], form[0]];
        let call = |body: &str| {
            let (status, text) = self.request("POST", "/", &headers, body.as_bytes());
            assert_eq!(status, 200, "moto IAM {body}: {text}");
            text
        };
        call("Action=CreateUser&UserName=tuna&Version=2010-05-08");
        let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22\
            %3A%22Allow%22%2C%22Action%22%3A%22s3%3A*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";
        call(&format!(
            "Action=PutUserPolicy&UserName=tuna&PolicyName=s3&PolicyDocument={policy}&Version=2010-05-08"
        ));
        let key = call("Action=CreateAccessKey&UserName=tuna&Version=2010-05-08");
        self.access_key = between(&key, "<AccessKeyId>", "</AccessKeyId>");
        self.secret_key = between(&key, "<SecretAccessKey>", "</SecretAccessKey>");
        let (status, text) = self.request("PUT", &format!("/{BUCKET}"), &[], b"");
        assert_eq!(status, 200, "moto create bucket: {text}");
        let plain = [("Content-Type", "text/plain")];
        let (status, text) = self.request("POST", "/moto-api/reset-auth", &plain, b"0");
        assert_eq!(status, 200, "moto reset-auth: {text}");
    }

    /// The server's base URL (`http://127.0.0.1:PORT`), an `artifacts.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment variables a client needs (the access key, its secret, the region).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_REGION".into(), REGION.into()),
        ]
    }

    /// [`Moto::env_vars`] as a lookup function.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + use<> {
        let vars = self.env_vars();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// What the server wrote.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Stops the server (its whole process group) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("moto {method} {path}: {e}\n{}", self.log()))
    }

    /// One request to the server; its status and body.
    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        crate::http::request(self.port, method, path, headers, body)
    }
}

fn between(text: &str, open: &str, close: &str) -> String {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {text}"))
        + open.len();
    let len = text[start..].find(close).expect("closing tag");
    text[start..start + len].to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
