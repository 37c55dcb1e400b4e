//! Taking in one uploaded blob: streamed into the store's temp folder, hashed on the way, no
//! larger than the per-file limit, and named only if it hashes to the name it was sent under
//! (for a `sha256:` name, the blob is stored under its blake3 digest and the alias recorded).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest as _, Sha256};

use super::aliases::Aliases;
use super::blob_name::BlobName;
use super::error::ProjectError;
use crate::cas::{Cas, Digest};

/// Stores what `reader` yields as the blob `name`; its blake3 digest and size.
pub fn store_blob(
    cas: &Cas,
    aliases: &Aliases,
    name: &BlobName,
    reader: &mut dyn Read,
    max: u64,
) -> Result<(Digest, u64), ProjectError> {
    let over = Rc::new(Cell::new(false));
    let sha_done = Rc::new(Cell::new(None));
    let mut limited = Limited {
        inner: reader,
        left: max,
        over: over.clone(),
        sha: matches!(name, BlobName::Sha256(_)).then(Sha256::new),
        sha_done: sha_done.clone(),
    };
    let wrong = |got: &Digest| ProjectError::WrongContent {
        name: name.to_string(),
        got: got.to_string(),
    };
    let stored = cas.put_stream(&mut limited, |got, _| match name {
        BlobName::B3(want) if want != got => Err(wrong(got)),
        BlobName::Sha256(want) if sha_done.get() != Some(*want) => {
            let got = sha_done
                .get()
                .map(|h| BlobName::Sha256(h).to_string())
                .unwrap_or_default();
            Err(ProjectError::WrongContent {
                name: name.to_string(),
                got,
            })
        }
        _ => Ok(()),
    });
    let (digest, len) = match stored {
        Err(_) if over.get() => return Err(ProjectError::UploadTooLarge { limit: max }),
        r => r?,
    };
    if let BlobName::Sha256(sha) = name {
        aliases
            .put(sha, &digest)
            .map_err(|e| ProjectError::io("the sha256 alias of an upload", e))?;
    }
    Ok((digest, len))
}

/// A reader that fails once more than `left` bytes came, and hashes with sha256 on the way
/// when asked (the hash lands in `sha_done` at the end).
struct Limited<'a> {
    inner: &'a mut dyn Read,
    left: u64,
    over: Rc<Cell<bool>>,
    sha: Option<Sha256>,
    sha_done: Rc<Cell<Option<[u8; 32]>>>,
}

impl Read for Limited<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.over.set(true);
            return Err(io::Error::other("the upload is over the per-file limit"));
        }
        self.left -= n as u64;
        if n == 0 {
            if let Some(h) = self.sha.take() {
                self.sha_done.set(Some(h.finalize().into()));
            }
        } else if let Some(h) = &mut self.sha {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
