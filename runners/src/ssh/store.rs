//! The host's content-addressed folder (`WORKDIR/cas/<blake3>`) as a [`BlobStore`]: existence
//! checks, listing and garbage collection over the runner's shared connection, transfers over
//! a connection of their own. Also the host's attempt folders as [`AttemptFolders`].

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::conn::{Conn, OpError};
use super::gc;
use super::host::{Host, HostError};
use super::stage;
use crate::shell::quote;
use crate::{
    AttemptFolders, BlobError, BlobSession, BlobStore, RemoteAttempt, Removed, StoredBlob,
};

/// The store of one host.
pub(crate) struct HostStore {
    pub host: Arc<Host>,
}

impl HostStore {
    fn cas(&self) -> String {
        format!("{}/cas", self.host.cfg.workdir)
    }

    fn runs(&self) -> String {
        format!("{}/runs", self.host.cfg.workdir)
    }
}

impl BlobStore for HostStore {
    fn missing(&self, hexes: &[String], timeout: Duration) -> Result<Vec<String>, BlobError> {
        let cas = self.cas();
        let mut lacking = Vec::new();
        for chunk in hexes.chunks(400) {
            let names: Vec<String> = chunk.iter().map(|h| quote(h)).collect();
            let command = format!(
                "cd {} && for h in {}; do [ -e \"$h\" ] || echo \"$h\"; done",
                quote(&cas),
                names.join(" ")
            );
            let out = self
                .host
                .trying_for(timeout, |c| {
                    let out = c.exec(&command)?;
                    if out.code == 0 {
                        Ok(out.stdout)
                    } else {
                        Err(OpError::Fatal(format!(
                            "listing {cas} on the host: {}",
                            out.stderr.trim()
                        )))
                    }
                })
                .map_err(blob_error)?;
            lacking.extend(out.lines().map(str::to_owned));
        }
        Ok(lacking)
    }

    fn list(&self, timeout: Duration) -> Result<Vec<StoredBlob>, BlobError> {
        let cas = self.cas();
        self.host
            .trying_for(timeout, |c| gc::list_blobs(c, &cas))
            .map_err(blob_error)
    }

    fn remove(&self, hexes: &[String], timeout: Duration) -> Result<Removed, BlobError> {
        let cas = self.cas();
        let mut done = Removed::default();
        let mut next = 0;
        self.host
            .trying_for(timeout, |c| {
                gc::remove_blobs(c, &cas, hexes, &mut next, &mut done)
            })
            .map_err(blob_error)?;
        Ok(done)
    }

    fn session(&self) -> Result<Box<dyn BlobSession>, BlobError> {
        let conn = Conn::open(&self.host.cfg).map_err(|e| BlobError::Unreachable(e.to_string()))?;
        Ok(Box::new(Session {
            conn,
            cas: self.cas(),
            runner: self.host.cfg.name.clone(),
        }))
    }
}

impl AttemptFolders for HostStore {
    fn attempts(&self, timeout: Duration) -> Result<Vec<RemoteAttempt>, BlobError> {
        let runs = self.runs();
        self.host
            .trying_for(timeout, |c| gc::list_attempts(c, &runs))
            .map_err(blob_error)
    }

    fn remove_attempts(
        &self,
        attempts: &[RemoteAttempt],
        timeout: Duration,
    ) -> Result<usize, BlobError> {
        let runs = self.runs();
        let mut next = 0;
        let mut removed = 0;
        self.host
            .trying_for(timeout, |c| {
                gc::remove_attempts(c, &runs, attempts, &mut next, &mut removed)
            })
            .map_err(blob_error)?;
        Ok(removed)
    }
}

/// A host's failure as the store reports it.
fn blob_error(e: HostError) -> BlobError {
    match e {
        HostError::Down(m) => BlobError::Unreachable(m),
        HostError::Refused(e) => BlobError::Unreachable(e.to_string()),
        HostError::Fatal(m) => BlobError::Other(m),
    }
}

/// A transfer connection to one host's store.
struct Session {
    conn: Conn,
    cas: String,
    runner: String,
}

impl Session {
    fn error(&self, e: OpError) -> BlobError {
        match e {
            OpError::Conn(m) => BlobError::Unreachable(format!(
                "runner `{}`: the connection broke: {m}",
                self.runner
            )),
            OpError::Fatal(m) => BlobError::Other(format!("runner `{}`: {m}", self.runner)),
        }
    }

    fn missing(&self, hex: &str) -> BlobError {
        BlobError::Missing {
            runner: self.runner.clone(),
            hex: hex.to_owned(),
        }
    }
}

fn not_found(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::SFTP(2)
}

impl BlobSession for Session {
    fn open(&mut self, hex: &str) -> Result<Box<dyn Read + Send + '_>, BlobError> {
        let path = format!("{}/{hex}", self.cas);
        let opened = match self.conn.sftp() {
            Ok(sftp) => sftp.open(Path::new(&path)),
            Err(e) => return Err(self.error(e)),
        };
        match opened {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if not_found(&e) => Err(self.missing(hex)),
            Err(e) => Err(self.error(e.into())),
        }
    }

    fn put(
        &mut self,
        hex: &str,
        executable: bool,
        source: &mut dyn Read,
    ) -> Result<u64, BlobError> {
        if self.has(hex)? {
            return Ok(0);
        }
        let cas = self.cas.clone();
        match stage::put_blob(&mut self.conn, &cas, hex, executable, source) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(got)) => Err(BlobError::Corrupt {
                hex: hex.to_owned(),
                got,
            }),
            Err(e) => Err(self.error(e)),
        }
    }

    fn has(&mut self, hex: &str) -> Result<bool, BlobError> {
        let path = format!("{}/{hex}", self.cas);
        let found = match self.conn.sftp() {
            Ok(sftp) => sftp.stat(Path::new(&path)),
            Err(e) => return Err(self.error(e)),
        };
        match found {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(self.error(e.into())),
        }
    }
}
