//! Bringing a finished attempt's declared outputs and metrics back into the local attempt
//! folder, where the orchestrator collects them as it does for local jobs. Each output file is
//! hashed on the way and hard-linked into the host's content-addressed folder, so a later step
//! on the same host that needs it finds it there and nothing is uploaded again.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::conn::{Conn, OpError};
use crate::shell::quote;

/// Copies each declared output that exists under `dir/work` (files and whole folders) into
/// `local_dir/work`, and `dir/metrics.json` if there is one.
pub(crate) fn fetch_outputs(
    conn: &mut Conn,
    workdir: &str,
    dir: &str,
    local_dir: &Path,
    outputs: &[String],
) -> Result<u64, OpError> {
    let mut bytes = 0;
    let mut blobs = Vec::new();
    for out in outputs {
        let rel = out.trim_end_matches('/');
        bytes += fetch(
            conn,
            &format!("{dir}/work/{rel}"),
            &local_dir.join("work").join(rel),
            &mut blobs,
        )?;
    }
    bytes += fetch(
        conn,
        &format!("{dir}/metrics.json"),
        &local_dir.join("metrics.json"),
        &mut Vec::new(),
    )?;
    keep_on_host(conn, workdir, &blobs)?;
    Ok(bytes)
}

/// Hard-links each fetched output file into `workdir/cas/<blake3>` unless a blob is there.
fn keep_on_host(conn: &mut Conn, workdir: &str, blobs: &[(String, String)]) -> Result<(), OpError> {
    for chunk in blobs.chunks(200) {
        let links: Vec<String> = chunk
            .iter()
            .map(|(remote, hex)| {
                let blob = quote(&format!("{workdir}/cas/{hex}"));
                format!(
                    "{{ [ -e {blob} ] || ln -f {} {blob} 2>/dev/null || true; }}",
                    quote(remote)
                )
            })
            .collect();
        conn.exec(&links.join("; "))?;
    }
    Ok(())
}

/// Copies a remote file or folder; a missing one is left out (the orchestrator reports it).
/// Each file copied is listed in `blobs` with its blake3.
fn fetch(
    conn: &mut Conn,
    remote: &str,
    local: &Path,
    blobs: &mut Vec<(String, String)>,
) -> Result<u64, OpError> {
    let sftp = conn.sftp()?;
    let stat = match sftp.stat(Path::new(remote)) {
        Ok(s) => s,
        Err(e) if e.code() == ssh2::ErrorCode::SFTP(2) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let fatal = |e: std::io::Error| OpError::Fatal(format!("{}: {e}", local.display()));
    if stat.is_dir() {
        std::fs::create_dir_all(local).map_err(fatal)?;
        let entries = sftp.readdir(Path::new(remote))?;
        let mut total = 0;
        for (path, _) in entries {
            let Some(name) = path.file_name() else {
                continue;
            };
            let name = name.to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            total += fetch(conn, &format!("{remote}/{name}"), &local.join(&name), blobs)?;
        }
        return Ok(total);
    }
    if let Some(parent) = local.parent() {
        std::fs::create_dir_all(parent).map_err(fatal)?;
    }
    let mut source = sftp.open(Path::new(remote))?;
    let tmp = std::path::PathBuf::from(format!("{}.tuna-part", local.display()));
    let mut file = File::create(&tmp).map_err(fatal)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(fatal)?;
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    drop(file);
    blobs.push((remote.to_owned(), hasher.finalize().to_hex().to_string()));
    if let Some(mode) = stat.perm {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            &tmp,
            std::fs::Permissions::from_mode((mode & 0o777) | 0o600),
        );
    }
    std::fs::rename(&tmp, local).map_err(fatal)?;
    Ok(total)
}
