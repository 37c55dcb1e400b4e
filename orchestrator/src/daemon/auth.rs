//! Bearer-token auth: tokens from `--tokens FILE` (one a line, `#` comments) and/or
//! `TUNA_SERVE_TOKENS` (comma-separated). Only their SHA-256 digests are kept, and a presented
//! token is compared with every one of them in constant time, without stopping at a match, so
//! neither its length nor which token it matches shows in the time taken.
//!
//! A request carries a token as `Authorization: Bearer T`. The dashboard alone also takes it
//! once in its URL (`?token=T`, see [`super::session`]).

use std::collections::BTreeSet;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} accepted)", self.digests.len())
    }
}

impl Tokens {
    /// Reads the tokens; an empty set is refused (the daemon never runs open).
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Tokens, String> {
        let mut set = BTreeSet::new();
        if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read tokens file {}: {e}", f.display()))?;
            for line in text.lines() {
                let t = line.trim();
                if !t.is_empty() && !t.starts_with('#') {
                    set.insert(t.to_string());
                }
            }
        }
        for t in env.unwrap_or("").split(',') {
            let t = t.trim();
            if !t.is_empty() {
                set.insert(t.to_string());
            }
        }
        if set.is_empty() {
            return Err(
                "no API tokens: pass --tokens FILE (one token a line) or set TUNA_SERVE_TOKENS"
                    .into(),
            );
        }
        if let Some(short) = set.iter().find(|t| t.len() < 16) {
            return Err(format!(
                "token `{}…` is too short: use at least 16 characters (e.g. `openssl rand -hex 16`)",
                &short[..short.len().min(3)]
            ));
        }
        Ok(Tokens {
            digests: set.iter().map(|t| digest(t)).collect(),
        })
    }

    /// Whether a presented token is valid: its digest is compared with each accepted one in
    /// constant time and the results are folded without an early exit.
    pub fn check(&self, presented: &str) -> bool {
        let d = digest(presented);
        let found = self
            .digests
            .iter()
            .fold(Choice::from(0), |acc, t| acc | t.ct_eq(&d));
        found.into()
    }

    /// The token of `Authorization: Bearer T`, if the request has one.
    pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
        headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(str::trim)
    }
}

/// The SHA-256 digest of a secret (tokens and session ids are kept only as these).
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_env_and_checks() {
        let t = Tokens::load(None, Some(" aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbbbbbb")).unwrap();
        assert!(t.check("aaaaaaaaaaaaaaaa"));
        assert!(t.check("bbbbbbbbbbbbbbbbbbbb"));
        assert!(!t.check("aaaaaaaaaaaaaaab"));
        assert!(!t.check("aaaaaaaaaaaaaaaaa"));
        assert!(!t.check("bbbbbbbbbbbbbbbb"));
        assert!(!t.check(""));
        assert!(Tokens::load(None, None).is_err());
        assert!(Tokens::load(None, Some("short")).is_err());
    }

    #[test]
    fn tokens_are_kept_only_as_digests() {
        let t = Tokens::load(None, Some("secret-token-0123456789")).unwrap();
        assert_eq!(t.digests, vec![digest("secret-token-0123456789")]);
        assert!(!format!("{t:?}").contains("secret"), "{t:?}");
    }
}
