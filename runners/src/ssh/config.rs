//! How an ssh runner is set up: where the host is, how to log in, and what it offers.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::Gpu;

/// Outputs above 64 MiB stay on the host by default.
pub const DEFAULT_KEEP_REMOTE_OVER: u64 = 64 << 20;

/// The settings of an [`SshRunner`](super::SshRunner).
#[derive(Clone, PartialEq)]
pub struct SshConfig {
    /// The runner's name, as workflows refer to it.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// A private key file; without one, the ssh agent is asked.
    pub identity: Option<PathBuf>,
    /// The key's passphrase, if it has one. Never logged.
    pub passphrase: Option<String>,
    /// The known_hosts file the host's key must be in.
    pub known_hosts: PathBuf,
    /// Add an unknown host's key to `known_hosts` instead of refusing it (a changed key is
    /// still refused), like OpenSSH's `StrictHostKeyChecking=accept-new`.
    pub accept_new: bool,
    /// The runner's folder on the host (absolute, or relative to the login folder).
    pub workdir: String,
    pub slots: u32,
    pub gpus: Vec<Gpu>,
    /// How long a job gets between SIGTERM and SIGKILL when it is cancelled or times out.
    pub kill_grace: Duration,
    /// How long opening the TCP connection may take.
    pub connect_timeout: Duration,
    /// How long one SSH operation may block before the connection counts as dropped.
    pub io_timeout: Duration,
    /// How long the host may stay unreachable before a job on it counts as lost.
    pub lost_after: Duration,
    /// The longest pause between two looks at a running job.
    pub poll_max: Duration,
    /// Outputs bigger than this (all files of a folder output together) stay in the host's
    /// content-addressed folder instead of coming back; `None`: every output comes back.
    pub keep_remote_over: Option<u64>,
    /// A program on this machine that prints the blake3 of each file it is given
    /// (`PROGRAM --b3sum FILE...`, one hex digest a line: `tuna-shim` does). It is uploaded to
    /// hosts of the same OS and architecture that have no `b3sum`, to name kept outputs.
    pub hasher: Option<PathBuf>,
    /// The `tuna` program on the host (`$TUNA_EXE` of its jobs, which built-in steps run
    /// through); `None`: `tuna` on the host's `PATH`.
    pub tuna: Option<String>,
}

impl SshConfig {
    /// A runner for `user@host:port` with the defaults for everything else.
    pub fn new(name: &str, host: &str, port: u16, user: &str) -> SshConfig {
        SshConfig {
            name: name.to_owned(),
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            identity: None,
            passphrase: None,
            known_hosts: PathBuf::from("~/.ssh/known_hosts"),
            accept_new: false,
            workdir: ".tuna-runner".to_owned(),
            slots: 1,
            gpus: Vec::new(),
            kill_grace: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            lost_after: Duration::from_secs(120),
            poll_max: Duration::from_millis(500),
            keep_remote_over: Some(DEFAULT_KEEP_REMOTE_OVER),
            hasher: None,
            tuna: None,
        }
    }

    /// `[host]:port` as known_hosts writes it (plain `host` on port 22).
    pub fn host_entry(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for SshConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("identity", &self.identity)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<secret>"))
            .field("known_hosts", &self.known_hosts)
            .field("accept_new", &self.accept_new)
            .field("workdir", &self.workdir)
            .field("slots", &self.slots)
            .field("gpus", &self.gpus)
            .field("keep_remote_over", &self.keep_remote_over)
            .finish_non_exhaustive()
    }
}
