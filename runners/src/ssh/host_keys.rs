//! Strict host key checking against an OpenSSH known_hosts file: a matching key passes, an
//! unknown one is refused (or, with `accept_new`, appended), a changed one is always refused.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, Session};

use super::config::SshConfig;
use super::error::ConnectError;

/// Checks the key the host presented in this session's handshake.
pub(crate) fn verify(session: &Session, cfg: &SshConfig) -> Result<(), ConnectError> {
    let path = expand_home(&cfg.known_hosts);
    let (key, kind) = session.host_key().ok_or_else(|| ConnectError::Ssh {
        host: cfg.host_entry(),
        reason: "the host presented no key".into(),
    })?;
    let key_type = type_name(kind).to_owned();
    let kh_error = |reason: String| ConnectError::KnownHosts {
        path: path.clone(),
        reason,
    };
    let mut known = session.known_hosts().map_err(|e| kh_error(e.to_string()))?;
    if path.exists() {
        known
            .read_file(&path, KnownHostFileKind::OpenSSH)
            .map_err(|e| kh_error(e.to_string()))?;
    }
    let refused = |changed: bool| {
        let (host, name, port, key_type, known_hosts) = (
            cfg.host_entry(),
            cfg.host.clone(),
            cfg.port,
            key_type.clone(),
            path.clone(),
        );
        if changed {
            ConnectError::HostKeyChanged {
                host,
                name,
                port,
                key_type,
                known_hosts,
            }
        } else {
            ConnectError::HostKeyUnknown {
                host,
                name,
                port,
                key_type,
                known_hosts,
            }
        }
    };
    match known.check_port(&cfg.host, cfg.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(refused(true)),
        CheckResult::NotFound if cfg.accept_new => {
            append(&path, &cfg.host_entry(), &key_type, key).map_err(kh_error)?;
            tracing::info!(host = %cfg.host_entry(), known_hosts = %path.display(),
                "accept_new: added the host's {key_type} key");
            Ok(())
        }
        CheckResult::NotFound => Err(refused(false)),
        CheckResult::Failure => Err(kh_error("libssh2 could not check the key".into())),
    }
}

/// Appends `entry type base64(key)` to the file, creating it (and its folder) if needed.
fn append(path: &Path, entry: &str, key_type: &str, key: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let line = format!("{entry} {} {}\n", wire_name(key), base64(key));
    let _ = key_type;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    file.write_all(line.as_bytes()).map_err(|e| e.to_string())
}

/// The key's algorithm as its wire encoding names it (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …):
/// the first length-prefixed string of the key blob.
fn wire_name(key: &[u8]) -> String {
    let len = key
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    key.get(4..4 + len)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_else(|| "ssh-unknown".into())
}

fn type_name(kind: HostKeyType) -> &'static str {
    match kind {
        HostKeyType::Rsa => "rsa",
        HostKeyType::Dss => "dsa",
        HostKeyType::Ecdsa256 | HostKeyType::Ecdsa384 | HostKeyType::Ecdsa521 => "ecdsa",
        HostKeyType::Ed25519 => "ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `~/x` → `$HOME/x`.
pub(crate) fn expand_home(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(rest))
            .unwrap_or_else(|| path.to_path_buf()),
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::{base64, wire_name};

    #[test]
    fn base64_pads_like_openssh() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_wire_name_is_the_first_string_of_the_blob() {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        assert_eq!(wire_name(&blob), "ssh-ed25519");
        assert_eq!(wire_name(&[1]), "ssh-unknown");
    }
}
