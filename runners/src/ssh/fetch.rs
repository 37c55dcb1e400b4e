//! Bringing a finished attempt's declared outputs and metrics back into the local attempt
//! folder, where the orchestrator collects them as it does for local jobs.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::conn::{Conn, OpError};

/// Copies each declared output that exists under `dir/work` (files and whole folders) into
/// `local_dir/work`, and `dir/metrics.json` if there is one.
pub(crate) fn fetch_outputs(
    conn: &mut Conn,
    dir: &str,
    local_dir: &Path,
    outputs: &[String],
) -> Result<u64, OpError> {
    let mut bytes = 0;
    for out in outputs {
        let rel = out.trim_end_matches('/');
        bytes += fetch(
            conn,
            &format!("{dir}/work/{rel}"),
            &local_dir.join("work").join(rel),
        )?;
    }
    bytes += fetch(
        conn,
        &format!("{dir}/metrics.json"),
        &local_dir.join("metrics.json"),
    )?;
    Ok(bytes)
}

/// Copies a remote file or folder; a missing one is left out (the orchestrator reports it).
fn fetch(conn: &mut Conn, remote: &str, local: &Path) -> Result<u64, OpError> {
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
            total += fetch(conn, &format!("{remote}/{name}"), &local.join(&name))?;
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
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(fatal)?;
        total += n as u64;
    }
    drop(file);
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
