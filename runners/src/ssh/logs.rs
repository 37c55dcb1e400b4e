//! Live logs: the remote `stdout.log`/`stderr.log` copied, as they grow, onto the end of the
//! local attempt folder's files of the same names (which `tuna logs -f` follows).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::conn::{Conn, OpError};

/// Copies the bytes of remote `dir/name` past the local file's length, up to `remote_len`.
pub(crate) fn pull(
    conn: &mut Conn,
    dir: &str,
    local_dir: &Path,
    name: &str,
    remote_len: u64,
) -> Result<(), OpError> {
    let local_path = local_dir.join(name);
    let have = std::fs::metadata(&local_path).map_or(0, |m| m.len());
    if remote_len <= have {
        return Ok(());
    }
    let sftp = conn.sftp()?;
    let mut remote = sftp.open(Path::new(&format!("{dir}/{name}")))?;
    remote.seek(SeekFrom::Start(have))?;
    let mut bytes = Vec::with_capacity((remote_len - have) as usize);
    remote.take(remote_len - have).read_to_end(&mut bytes)?;
    let mut local = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&local_path)
        .map_err(|e| OpError::Fatal(format!("{}: {e}", local_path.display())))?;
    local
        .write_all(&bytes)
        .map_err(|e| OpError::Fatal(format!("{}: {e}", local_path.display())))?;
    Ok(())
}
