//! Dashboard sessions. A browser opens the dashboard once with `?token=T` (a GET of a
//! dashboard page); the daemon then answers with a redirect to the same page without the
//! token, setting an `HttpOnly; SameSite=Strict` cookie that carries a random session id, never
//! the token. The cookie is accepted for GET requests only (pages, and the dashboard's own
//! `fetch`/`EventSource` reads of the API), so it cannot be used to change anything.
//!
//! Sessions live in memory (a restart asks for the token again), for [`SESSION_TTL`], at most
//! [`MAX_SESSIONS`] of them (the oldest goes first); only ids' digests are kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::auth::digest;

/// The session cookie's name.
pub const COOKIE: &str = "tuna_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 4096;

#[derive(Debug, Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    /// Opens a session; its id (64 hex digits, 256 random bits).
    pub fn open(&self) -> String {
        let bytes: [u8; 32] = rand::random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, born| now.duration_since(*born) < SESSION_TTL);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, born)| **born).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(digest(&id), now);
        id
    }

    /// Whether a presented session id is open (looked up by its digest, which a caller cannot
    /// steer, so the lookup's timing tells nothing about the ids).
    pub fn check(&self, id: &str) -> bool {
        let map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&digest(id))
            .is_some_and(|born| born.elapsed() < SESSION_TTL)
    }

    /// The `Set-Cookie` value for a session (`Secure` when the daemon speaks TLS).
    pub fn cookie(id: &str, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        )
    }

    /// The session id a request's `Cookie` headers carry, if any.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|c| c.to_str().ok())
            .flat_map(|c| c.split(';'))
            .find_map(|part| part.trim().strip_prefix(COOKIE)?.strip_prefix('='))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_check_and_never_hold_the_id() {
        let s = Sessions::default();
        let id = s.open();
        assert_eq!(id.len(), 64);
        assert!(s.check(&id));
        assert!(!s.check(&id[1..]));
        assert!(!s.check(""));
        assert!(!format!("{s:?}").contains(&id));
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("a=b; {COOKIE}={id}").parse().unwrap(),
        );
        assert_eq!(Sessions::from_headers(&h), Some(id.as_str()));
        let c = Sessions::cookie(&id, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
    }
}
