//! Live logs: the remote `stdout.log`/`stderr.log` copied, as they grow, onto the end of the
//! local attempt folder's files of the same names (which `tuna logs -f` follows). A job with
//! secrets has its logs copied through its mask (`mask.rs`).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::conn::{Conn, OpError};
use super::mask::{Copy, LogMasks};

/// Copies the new bytes of remote `dir/name`, up to `remote_len`, onto the local file: past
/// the local file's length for a job without secrets, from the mask's offset, masked, for one
/// with them.
pub(crate) fn pull(
    conn: &mut Conn,
    masks: &LogMasks,
    dir: &str,
    local_dir: &Path,
    name: &str,
    remote_len: u64,
) -> Result<(), OpError> {
    let local_path = local_dir.join(name);
    let (have, restart) = match masks.plan(dir, name) {
        Copy::Plain => (std::fs::metadata(&local_path).map_or(0, |m| m.len()), false),
        Copy::Masked { from, restart } => (from, restart),
    };
    if restart {
        append(local_dir, name, b"", true)?;
    }
    if remote_len <= have {
        return Ok(());
    }
    let sftp = conn.sftp()?;
    let mut remote = sftp.open(Path::new(&format!("{dir}/{name}")))?;
    remote.seek(SeekFrom::Start(have))?;
    let mut bytes = Vec::with_capacity((remote_len - have) as usize);
    remote.take(remote_len - have).read_to_end(&mut bytes)?;
    let bytes = masks.mask(dir, name, &bytes);
    append(local_dir, name, &bytes, false)
}

/// The attempt in `dir` ended and its logs were copied to the end: the bytes each mask held
/// back go onto their local files.
pub(crate) fn finish(masks: &LogMasks, dir: &str, local_dir: &Path) -> Result<(), OpError> {
    for (name, rest) in masks.finish(dir) {
        append(local_dir, &name, &rest, false)?;
    }
    Ok(())
}

/// Appends `bytes` to the local log `name` (emptied first when `truncate`).
fn append(local_dir: &Path, name: &str, bytes: &[u8], truncate: bool) -> Result<(), OpError> {
    let path = local_dir.join(name);
    let fatal = |e: std::io::Error| OpError::Fatal(format!("{}: {e}", path.display()));
    let mut file = OpenOptions::new()
        .create(true)
        .append(!truncate)
        .write(true)
        .truncate(truncate)
        .open(&path)
        .map_err(fatal)?;
    file.write_all(bytes).map_err(fatal)
}
