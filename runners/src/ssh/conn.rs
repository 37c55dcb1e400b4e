//! One open, authenticated SSH connection with the runner's folder prepared on the host:
//! running a remote command, and SFTP for files.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use ssh2::{OpenFlags, OpenType, Session, Sftp};

use super::config::SshConfig;
use super::error::ConnectError;
use super::host_keys;
use super::wrapper;
use crate::shell::quote;

/// An open connection. Not shared between threads at once: [`Host`](super::host::Host) locks it.
pub(crate) struct Conn {
    session: Session,
    sftp: Option<Sftp>,
    /// The remote path of the uploaded wrapper.
    pub wrapper: String,
}

/// What a remote command printed and how it exited.
#[derive(Debug)]
pub(crate) struct Exec {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A failed operation on an open connection: the transport broke (reconnect and retry), or
/// the remote side said no (retrying will not help).
#[derive(Debug)]
pub(crate) enum OpError {
    Conn(String),
    Fatal(String),
}

impl From<ssh2::Error> for OpError {
    fn from(e: ssh2::Error) -> OpError {
        OpError::Conn(e.to_string())
    }
}

impl From<std::io::Error> for OpError {
    fn from(e: std::io::Error) -> OpError {
        OpError::Conn(e.to_string())
    }
}

impl Conn {
    /// Connects, checks the host key, logs in and prepares the runner's folder.
    pub fn open(cfg: &SshConfig) -> Result<Conn, ConnectError> {
        let host = cfg.host_entry();
        let unreachable = |reason: String| ConnectError::Unreachable {
            host: host.clone(),
            reason,
        };
        let addr = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("the name has no address".into()))?;
        let tcp = TcpStream::connect_timeout(&addr, cfg.connect_timeout)
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let ssh = |e: ssh2::Error| ConnectError::Ssh {
            host: host.clone(),
            reason: e.to_string(),
        };
        let mut session = Session::new().map_err(ssh)?;
        session.set_tcp_stream(tcp);
        session.set_timeout(cfg.io_timeout.as_millis().min(u32::MAX as u128) as u32);
        session.handshake().map_err(ssh)?;
        host_keys::verify(&session, cfg)?;
        authenticate(&session, cfg)?;
        let mut conn = Conn {
            session,
            sftp: None,
            wrapper: format!("{}/bin/{}", cfg.workdir, wrapper::file_name()),
        };
        conn.prepare(cfg).map_err(|e| ConnectError::Ssh {
            host: host.clone(),
            reason: match e {
                OpError::Conn(m) | OpError::Fatal(m) => {
                    format!("preparing {} on the host: {m}", cfg.workdir)
                }
            },
        })?;
        Ok(conn)
    }

    /// How long one operation may block from now on.
    pub fn set_io_timeout(&mut self, timeout: std::time::Duration) {
        self.session
            .set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
    }

    /// Makes the runner's folders and uploads the wrapper unless this version is there.
    fn prepare(&mut self, cfg: &SshConfig) -> Result<(), OpError> {
        let w = quote(&cfg.workdir);
        let out = self.exec(&format!(
            "mkdir -p {w}/cas {w}/runs {w}/bin && if [ -f {q} ]; then echo have; fi",
            q = quote(&self.wrapper)
        ))?;
        if out.code != 0 {
            return Err(OpError::Fatal(out.stderr.trim().to_owned()));
        }
        if out.stdout.trim() != "have" {
            let wrapper = self.wrapper.clone();
            self.write_file(&wrapper, wrapper::SCRIPT.as_bytes(), 0o755)?;
        }
        Ok(())
    }

    /// Runs `command` in the login shell on the host and waits for it.
    pub fn exec(&self, command: &str) -> Result<Exec, OpError> {
        let mut channel = self.session.channel_session()?;
        channel.exec(command)?;
        let mut stdout = String::new();
        channel.read_to_string(&mut stdout)?;
        let mut stderr = String::new();
        channel.stderr().read_to_string(&mut stderr)?;
        channel.wait_close()?;
        Ok(Exec {
            code: channel.exit_status()?,
            stdout,
            stderr,
        })
    }

    /// The connection's SFTP channel, opened on first use.
    pub fn sftp(&mut self) -> Result<&Sftp, OpError> {
        if self.sftp.is_none() {
            self.sftp = Some(self.session.sftp()?);
        }
        Ok(self.sftp.as_ref().expect("just set"))
    }

    /// Writes `bytes` to the remote `path` whole: to a temp name first, then renamed over it.
    pub fn write_file(&mut self, path: &str, bytes: &[u8], mode: i32) -> Result<(), OpError> {
        self.put_stream(path, &mut &bytes[..], mode).map(|_| ())
    }

    /// Streams `source` to the remote `path` whole (a temp name first, then renamed over it).
    pub fn put_stream(
        &mut self,
        path: &str,
        source: &mut dyn Read,
        mode: i32,
    ) -> Result<u64, OpError> {
        let tmp = temp_name(path);
        let (len, _) = self.write_temp(&tmp, source, mode)?;
        self.rename(&tmp, path)?;
        Ok(len)
    }

    /// Streams `source` into the remote file `tmp` in chunks, hashing it on the way. A failed
    /// read of `source` is [`OpError::Fatal`]: this connection is fine.
    pub fn write_temp(
        &mut self,
        tmp: &str,
        source: &mut dyn Read,
        mode: i32,
    ) -> Result<(u64, blake3::Hash), OpError> {
        let sftp = self.sftp()?;
        let mut file = sftp.open_mode(
            std::path::Path::new(tmp),
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
            mode,
            OpenType::File,
        )?;
        let mut buf = vec![0u8; CHUNK];
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(OpError::Fatal(format!("reading what goes to {tmp}: {e}"))),
            };
            file.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        drop(file);
        Ok((total, hasher.finalize()))
    }

    /// Moves `from` over `to` on the host (SFTP v3 rename refuses to replace; `mv` does).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), OpError> {
        let out = self.exec(&format!("mv -f {} {}", quote(from), quote(to)))?;
        if out.code != 0 {
            return Err(OpError::Fatal(format!(
                "cannot write {to}: {}",
                out.stderr.trim()
            )));
        }
        Ok(())
    }
}

/// How much of a file one SFTP write or read moves.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A temp name beside `path`, unique to this process and call.
pub(crate) fn temp_name(path: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{path}.tmp-{}-{n}", std::process::id())
}

fn authenticate(session: &Session, cfg: &SshConfig) -> Result<(), ConnectError> {
    let (how, result) = match &cfg.identity {
        Some(key) => {
            let key = host_keys::expand_home(key);
            (
                format!("key {}", key.display()),
                session.userauth_pubkey_file(&cfg.user, None, &key, cfg.passphrase.as_deref()),
            )
        }
        None => (
            "the ssh agent".to_owned(),
            session.userauth_agent(&cfg.user),
        ),
    };
    match result {
        Ok(()) if session.authenticated() => Ok(()),
        Ok(()) => Err(ConnectError::AuthFailed {
            user: cfg.user.clone(),
            host: cfg.host_entry(),
            how,
            reason: "not authenticated".into(),
        }),
        Err(e) => Err(ConnectError::AuthFailed {
            user: cfg.user.clone(),
            host: cfg.host_entry(),
            how,
            reason: e.message().to_owned(),
        }),
    }
}
