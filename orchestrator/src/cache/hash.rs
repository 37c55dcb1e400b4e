//! Content digests of input files and folders, streamed.

use std::io;
use std::path::Path;

/// blake3 of a file's bytes, or of a folder's sorted `(relative path, mode, digest)` entries.
pub fn digest_path(path: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut entries = Vec::new();
        walk(path, path, &mut entries)?;
        entries.sort();
        let mut h = blake3::Hasher::new();
        for (rel, exec, digest) in entries {
            h.update(rel.as_bytes());
            h.update(&[0, exec as u8, 0]);
            h.update(digest.as_bytes());
            h.update(b"\n");
        }
        Ok(format!("d:{}", h.finalize().to_hex()))
    } else {
        Ok(format!("f:{}", file_digest(path)?))
    }
}

fn file_digest(path: &Path) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, bool, String)>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            out.push((
                rel,
                meta.permissions().mode() & 0o111 != 0,
                file_digest(&path)?,
            ));
        }
    }
    Ok(())
}
