//! Naming files on the host by their blake3 without bringing them here: the host's own
//! `b3sum` where it has one, else tuna's hasher (`SshConfig::hasher`) uploaded once into the
//! runner's `bin/` folder when the host runs the same OS and architecture as this machine.

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use super::conn::{Conn, OpError};
use super::host::Host;
use crate::shell::quote;

/// The command that hashes files on the host (file names follow it), found out once per host;
/// `None` when the host cannot hash (its big outputs then come back like small ones).
pub(crate) fn command(host: &Host, conn: &mut Conn) -> Result<Option<String>, OpError> {
    if let Some(known) = host
        .hasher
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        return Ok(known);
    }
    let started = std::time::Instant::now();
    let found = find(host, conn)?;
    tracing::debug!(runner = %host.cfg.name, hasher = ?found, took = ?started.elapsed(), "found how to hash on the host");
    if found.is_none() {
        tracing::warn!(
            runner = %host.cfg.name,
            "the host has no b3sum and tuna cannot upload its hasher there (another OS or \
             architecture, or no hasher set): big outputs come back instead of staying there"
        );
    }
    *host.hasher.lock().unwrap_or_else(|p| p.into_inner()) = Some(found.clone());
    Ok(found)
}

fn find(host: &Host, conn: &mut Conn) -> Result<Option<String>, OpError> {
    let out = conn.exec("command -v b3sum >/dev/null 2>&1 && echo b3sum; uname -sm")?;
    let mut lines = out.stdout.lines();
    let first = lines.next().unwrap_or_default().trim();
    if first == "b3sum" {
        return Ok(Some("b3sum".to_owned()));
    }
    let (Some(hasher), Some(local)) = (&host.cfg.hasher, local_uname()) else {
        return Ok(None);
    };
    if first != local {
        return Ok(None);
    }
    let Some(id) = file_id(hasher) else {
        return Ok(None);
    };
    let remote = format!("{}/bin/tuna-hash-{id}", host.cfg.workdir);
    let have = conn.exec(&format!("[ -x {} ] && echo have", quote(&remote)))?;
    if have.stdout.trim() != "have" {
        let mut file =
            File::open(hasher).map_err(|e| OpError::Fatal(format!("{}: {e}", hasher.display())))?;
        conn.put_stream(&remote, &mut file, 0o755)?;
    }
    Ok(Some(format!("{} --b3sum", quote(&remote))))
}

/// `uname -sm` of this machine.
fn local_uname() -> Option<&'static str> {
    static UNAME: OnceLock<Option<String>> = OnceLock::new();
    UNAME
        .get_or_init(|| {
            let out = std::process::Command::new("uname")
                .arg("-sm")
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .as_deref()
}

/// The first 16 hex digits of the hasher program's blake3: its name on the host, so that
/// hosts shared by different tuna builds each run the one they uploaded.
fn file_id(path: &Path) -> Option<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path).ok()?).ok()?;
    Some(hasher.finalize().to_hex()[..16].to_owned())
}

/// The blake3 of each file of `files` (paths relative to `dir`), in order.
pub(crate) fn hash_files(
    conn: &mut Conn,
    command: &str,
    dir: &str,
    files: &[String],
) -> Result<Vec<String>, OpError> {
    let mut hexes = Vec::with_capacity(files.len());
    for chunk in files.chunks(200) {
        let names: Vec<String> = chunk.iter().map(|f| quote(&format!("./{f}"))).collect();
        let out = conn.exec(&format!(
            "cd {} && {command} {}",
            quote(dir),
            names.join(" ")
        ))?;
        // b3sum writes `\` before a line whose file name it had to escape.
        let got: Vec<String> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|h| h.trim_start_matches('\\').to_owned())
            .collect();
        let valid = got.len() == chunk.len()
            && got
                .iter()
                .all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if out.code != 0 || !valid {
            return Err(OpError::Fatal(format!(
                "hashing outputs in {dir} on the host ({command}) failed: {}",
                out.stderr.trim()
            )));
        }
        hexes.extend(got.into_iter().map(|h| h.to_ascii_lowercase()));
    }
    Ok(hexes)
}
