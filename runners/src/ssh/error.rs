//! Why a connection to a host could not be opened, in words a user can act on.

use std::path::PathBuf;

use crate::CheckProblem;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error(
        "the host key of {host} ({key_type}) is not in {known_hosts}; refusing to connect. If you \
         trust this host, add its key with `ssh-keyscan -p {port} -t {key_type} {name} >> {known_hosts}` \
         (or set `accept_new: true` on this runner to add unknown keys on first contact)"
    )]
    HostKeyUnknown {
        host: String,
        name: String,
        port: u16,
        key_type: String,
        known_hosts: PathBuf,
    },
    #[error(
        "the host key of {host} ({key_type}) does NOT match the one in {known_hosts}; refusing to \
         connect: someone may be intercepting the connection, or the host was reinstalled. If you \
         know the new key is right, remove the old one with `ssh-keygen -R '{host}' -f {known_hosts}` \
         and add the new one with `ssh-keyscan -p {port} -t {key_type} {name} >> {known_hosts}`"
    )]
    HostKeyChanged {
        host: String,
        name: String,
        port: u16,
        key_type: String,
        known_hosts: PathBuf,
    },
    #[error("cannot read known_hosts {path}: {reason}")]
    KnownHosts { path: PathBuf, reason: String },
    #[error("{user}@{host} refused our credentials ({how}): {reason}")]
    AuthFailed {
        user: String,
        host: String,
        how: String,
        reason: String,
    },
    #[error("ssh to {host}: {reason}")]
    Ssh { host: String, reason: String },
}

impl ConnectError {
    /// How `check` reports it.
    pub fn problem(&self) -> CheckProblem {
        match self {
            ConnectError::Unreachable { .. } | ConnectError::Ssh { .. } => {
                CheckProblem::Unreachable
            }
            ConnectError::HostKeyUnknown { .. }
            | ConnectError::HostKeyChanged { .. }
            | ConnectError::KnownHosts { .. } => CheckProblem::HostKeyRefused,
            ConnectError::AuthFailed { .. } => CheckProblem::AuthFailed,
        }
    }

    /// Whether trying again later may help (a host that is down may come back; a refused key
    /// or login will not change by itself).
    pub fn transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Unreachable { .. } | ConnectError::Ssh { .. }
        )
    }
}
