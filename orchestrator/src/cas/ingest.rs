//! Streaming helpers: hash a file, or copy it while hashing, never holding it in memory.

use std::fs::File;
use std::io::{self, Read, Write};

/// Read size for hashing and copying.
const CHUNK: usize = 256 * 1024;

/// The blake3 hash of everything `reader` yields.
pub(crate) fn hash_reader(mut reader: impl Read) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Copies `reader` into `out`, returning the hash of what was copied and its length.
pub(crate) fn copy_hashing(
    mut reader: impl Read,
    out: &mut File,
) -> io::Result<(blake3::Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; CHUNK];
    let mut len = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok((hasher.finalize(), len)),
            Ok(n) => {
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
