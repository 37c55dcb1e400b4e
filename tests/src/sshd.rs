//! A real OpenSSH server for tests: `sshd` on a loopback address (127.0.0.1, 127.0.0.2, … are
//! all this machine) and a free port, with generated host and client keys, a known_hosts that
//! trusts it and an authorized_keys that lets the current user in. Stopped on drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) sshd with its keys in a temp folder.
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The address it listens on, e.g. `127.0.0.2`.
    pub host: String,
    pub port: u16,
    /// A folder put first on the PATH of every session (for fake tools like `nvidia-smi`).
    path_prefix: Option<PathBuf>,
}

/// Whether this machine can run the tests' sshd (OpenSSH server installed).
pub fn available() -> bool {
    Path::new("/usr/sbin/sshd").exists() && which("ssh-keygen")
}

fn which(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The user the tests log in as: the current one.
pub fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "tuna-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

impl Sshd {
    /// Starts sshd on `host` (a 127.x.y.z address) and a free port; waits until it accepts.
    pub fn start(host: &str) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("tuna-sshd-")
            .tempdir()
            .expect("tempdir");
        let _ = fs::create_dir_all("/run/sshd");
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        fs::create_dir_all(dir.path().join("ak")).expect("ak");
        fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("ak").join(user()),
        )
        .expect("authorized_keys");
        let mut sshd = Sshd {
            dir,
            child: None,
            host: host.to_string(),
            port: 0,
            path_prefix: None,
        };
        for _ in 0..20 {
            sshd.port = free_port(host);
            if sshd.launch() {
                sshd.write_known_hosts();
                return sshd;
            }
        }
        panic!("sshd did not start on {host}: {}", sshd.log());
    }

    fn write_known_hosts(&self) {
        fs::write(self.known_hosts(), format!("{}\n", self.known_hosts_line())).expect("kh");
    }

    /// Starts the server process and waits for its port; false if it exited first.
    fn launch(&mut self) -> bool {
        let d = self.dir.path();
        let config = format!(
            "Port {port}\nListenAddress {host}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/ak/%u\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
             StrictModes no\nUseDNS no\nMaxSessions 64\nMaxStartups 64\n\
             Subsystem sftp internal-sftp\n{path}",
            path = self
                .path_prefix
                .as_ref()
                .map(|p| format!("SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n", p.display()))
                .unwrap_or_default(),
            port = self.port,
            host = self.host,
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let log = fs::File::create(d.join("sshd.log")).expect("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if TcpStream::connect((self.host.as_str(), self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// The private key the tests log in with.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A known_hosts file that trusts this server.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// `[host]:port ssh-ed25519 AAAA…` for this server's key.
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        let mut parts = public.split_whitespace();
        format!(
            "[{}]:{} {} {}",
            self.host,
            self.port,
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default()
        )
    }

    /// A folder inside the server's temp folder, for files a test wants to keep beside it.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The listening server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server and every connection it serves (jobs started detached keep running).
    pub fn stop(&mut self) {
        self.cut_connections();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same address, port and keys.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.launch() {
            assert!(
                Instant::now() < deadline,
                "sshd did not restart: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts the server with `dir` first on every session's PATH.
    pub fn restart_with_path(&mut self, dir: &Path) {
        self.path_prefix = Some(dir.to_path_buf());
        self.restart();
    }

    /// Kills the sshd processes that serve connections (the listener stays): every client is
    /// cut off at once. Returns how many were killed.
    pub fn cut_connections(&self) -> usize {
        let Some(root) = self.pid() else { return 0 };
        let mut killed = 0;
        for pid in sshd_descendants(root) {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        killed
    }
}

/// The processes below `root` whose name starts with `sshd` (per-connection servers).
fn sshd_descendants(root: u32) -> Vec<u32> {
    let mut procs = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = stat[open + 1..close].to_string();
            let ppid = stat[close + 1..]
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0);
            procs.push((pid, ppid, comm));
        }
    }
    let mut found = vec![root];
    let mut out = Vec::new();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid, comm) in &procs {
            if *ppid == parent && comm.starts_with("sshd") && !found.contains(pid) {
                found.push(*pid);
                out.push(*pid);
            }
        }
        i += 1;
    }
    out
}

fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
