//! [`BlobName`]: how a client names a file's content: `b3:HEX` (blake3, the store's own
//! names) or `sha256:HEX`, for clients that only have a standard library (Python's hashlib has
//! no blake3). A blob sent under a sha256 name is stored under its blake3 name, and the daemon
//! remembers the pair (see `aliases.rs`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cas::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobName {
    /// A blob digest of the store (never a tree).
    B3(Digest),
    Sha256([u8; 32]),
}

const SHA256: &str = "sha256:";

/// A string that names no blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a file digest (expected `b3:` or `sha256:` and 64 lower-case hex digits)")]
pub struct BadBlobName(pub String);

impl FromStr for BlobName {
    type Err = BadBlobName;

    fn from_str(s: &str) -> Result<BlobName, BadBlobName> {
        let bad = || BadBlobName(s.chars().take(100).collect());
        if let Some(hex) = s.strip_prefix(SHA256) {
            return parse_hex(hex).map(BlobName::Sha256).ok_or_else(bad);
        }
        match s.parse::<Digest>() {
            Ok(d) if !d.is_tree() => Ok(BlobName::B3(d)),
            _ => Err(bad()),
        }
    }
}

/// 64 lower-case hex digits as 32 bytes.
fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |b: u8| if b <= b'9' { b - b'0' } else { b - b'a' + 10 };
        out[i] = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Some(out)
}

/// 32 bytes as 64 lower-case hex digits.
pub(crate) fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobName::B3(d) => write!(f, "{d}"),
            BlobName::Sha256(h) => write!(f, "{SHA256}{}", hex(h)),
        }
    }
}

impl Serialize for BlobName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlobName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BlobName, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::BlobName;

    #[test]
    fn names_round_trip_and_trees_are_not_files() {
        let b3 = format!("b3:{}", blake3::hash(b"x").to_hex());
        let sha = format!("sha256:{}", "ab".repeat(32));
        for s in [&b3, &sha] {
            assert_eq!(&s.parse::<BlobName>().unwrap().to_string(), s);
        }
        let tree = format!("b3tree:{}", blake3::hash(b"x").to_hex());
        for bad in [
            tree.as_str(),
            "sha256:AB",
            "md5:00",
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha256:{}", "ab".repeat(33)),
        ] {
            assert!(bad.parse::<BlobName>().is_err(), "{bad}");
        }
    }
}
