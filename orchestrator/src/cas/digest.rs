//! [`Digest`]: the name of a stored blob or tree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a digest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestKind {
    /// The bytes of one file.
    Blob,
    /// A folder: the digest of its [`Tree`](super::Tree) manifest.
    Tree,
}

/// A blake3 digest and what it names. Written `b3:<hex>` for a blob and `b3tree:<hex>` for a
/// tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    kind: DigestKind,
    hash: [u8; 32],
}

const BLOB_PREFIX: &str = "b3:";
const TREE_PREFIX: &str = "b3tree:";

impl Digest {
    pub fn new(kind: DigestKind, hash: [u8; 32]) -> Digest {
        Digest { kind, hash }
    }

    pub(crate) fn blob(hash: blake3::Hash) -> Digest {
        Digest::new(DigestKind::Blob, *hash.as_bytes())
    }

    pub(crate) fn tree(hash: blake3::Hash) -> Digest {
        Digest::new(DigestKind::Tree, *hash.as_bytes())
    }

    pub fn kind(&self) -> DigestKind {
        self.kind
    }

    pub fn is_tree(&self) -> bool {
        self.kind == DigestKind::Tree
    }

    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The 64 lower-case hex digits of the hash.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.hash).to_hex().to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            DigestKind::Blob => BLOB_PREFIX,
            DigestKind::Tree => TREE_PREFIX,
        };
        write!(f, "{prefix}{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a digest (expected `b3:` or `b3tree:` and 64 hex digits)")]
pub struct DigestParseError(String);

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Digest, DigestParseError> {
        let (kind, hex) = if let Some(hex) = s.strip_prefix(TREE_PREFIX) {
            (DigestKind::Tree, hex)
        } else if let Some(hex) = s.strip_prefix(BLOB_PREFIX) {
            (DigestKind::Blob, hex)
        } else {
            return Err(DigestParseError(s.to_owned()));
        };
        // from_hex also accepts upper case; the canonical form is lower case only.
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(DigestParseError(s.to_owned()));
        }
        let hash = blake3::Hash::from_hex(hex).map_err(|_| DigestParseError(s.to_owned()))?;
        Ok(Digest::new(kind, *hash.as_bytes()))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
