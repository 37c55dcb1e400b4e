//! Bearer-token auth: tokens from `--tokens FILE` (one a line, `#` comments) and/or
//! `TUNA_SERVE_TOKENS` (comma-separated). A request carries one as `Authorization: Bearer T`;
//! the dashboard also accepts it once as `?token=T` and then keeps it in a cookie.

use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct Tokens {
    set: HashSet<String>,
}

impl Tokens {
    /// Reads the tokens; an empty set is refused (the daemon never runs open).
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Tokens, String> {
        let mut set = HashSet::new();
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
        Ok(Tokens { set })
    }

    /// Whether a presented token is valid (compared in constant time per candidate).
    pub fn check(&self, presented: &str) -> bool {
        self.set
            .iter()
            .any(|t| constant_eq(t.as_bytes(), presented.as_bytes()))
    }

    /// The token in a request: `Authorization: Bearer`, else the `tuna_token` cookie, else
    /// `?token=`.
    pub fn from_request(headers: &axum::http::HeaderMap, query: Option<&str>) -> Option<String> {
        if let Some(v) = headers.get(axum::http::header::AUTHORIZATION)
            && let Ok(v) = v.to_str()
            && let Some(t) = v.strip_prefix("Bearer ")
        {
            return Some(t.trim().to_string());
        }
        for c in headers.get_all(axum::http::header::COOKIE) {
            for part in c.to_str().unwrap_or("").split(';') {
                if let Some(t) = part.trim().strip_prefix("tuna_token=") {
                    return Some(t.to_string());
                }
            }
        }
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_env_and_checks() {
        let t = Tokens::load(None, Some(" aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbb")).unwrap();
        assert!(t.check("aaaaaaaaaaaaaaaa"));
        assert!(!t.check("aaaaaaaaaaaaaaab"));
        assert!(!t.check(""));
        assert!(Tokens::load(None, None).is_err());
        assert!(Tokens::load(None, Some("short")).is_err());
    }
}
