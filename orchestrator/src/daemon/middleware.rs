//! The request middleware: who may call what ([`auth`]) and the shape of every error
//! ([`json_errors`]).
//!
//! - API routes (`/api/…`) take a token only from `Authorization: Bearer T`; GET requests also
//!   take the dashboard's session cookie (its own reads of the API).
//! - Dashboard pages take the session cookie, or, on a GET, `?token=T` once: the answer is a
//!   redirect to the same page without the token that opens a session ([`super::session`]).
//! - Every error answer is JSON, `{"error": "…"}`, whoever made it (a handler, or axum's own
//!   rejections: 405, 413, 415, bad JSON, bad path or query parameters).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::ApiError;
use super::auth::Tokens;
use super::session::Sessions;

/// What the auth middleware needs.
#[derive(Clone)]
pub struct Gate {
    pub tokens: Arc<Tokens>,
    pub sessions: Arc<Sessions>,
    /// Whether the daemon speaks TLS (the session cookie is then `Secure`).
    pub tls: bool,
}

pub async fn auth(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(t) = Tokens::bearer(headers) {
        return if gate.tokens.check(t) {
            next.run(req).await
        } else {
            unauthorized()
        };
    }
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if reads
        && let Some(s) = Sessions::from_headers(headers)
        && gate.sessions.check(s)
    {
        return next.run(req).await;
    }
    let page = !req.uri().path().starts_with("/api/");
    if reads
        && page
        && let Some((token, rest)) = split_token(req.uri().query())
        && gate.tokens.check(&token)
    {
        return open_session(&gate, req.uri().path(), &rest);
    }
    unauthorized()
}

/// The answer to a dashboard page opened with a valid `?token=`: a redirect to the page
/// without it (so the token leaves the address bar and the history) that sets the cookie.
fn open_session(gate: &Gate, path: &str, rest: &str) -> Response {
    let id = gate.sessions.open();
    let path = if path.starts_with("//") { "/" } else { path };
    let location = if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{rest}")
    };
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let (Ok(loc), Ok(cookie)) = (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&Sessions::cookie(&id, gate.tls)),
    ) {
        h.insert(header::LOCATION, loc);
        h.insert(header::SET_COOKIE, cookie);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// `token=…` out of a query string: the token and the query without it.
fn split_token(query: Option<&str>) -> Option<(String, String)> {
    let mut token = None;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query?.as_bytes()) {
        if k == "token" {
            token.get_or_insert_with(|| v.into_owned());
        } else {
            rest.append_pair(&k, &v);
        }
    }
    Some((token?, rest.finish()))
}

fn unauthorized() -> Response {
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "a valid token is needed: send `Authorization: Bearer TOKEN`",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// The largest error text carried over from a non-JSON error answer.
const MAX_ERROR_TEXT: usize = 16 * 1024;

/// Turns every error answer that is not JSON yet (axum's rejections, 405s) into
/// `{"error": "…"}`, keeping its status and its other headers (`Allow`, `WWW-Authenticate`).
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut out = ApiError::new(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_out_of_the_query() {
        let (t, rest) = split_token(Some("a=1&token=x%2By+z&b=2")).unwrap();
        assert_eq!(t, "x+y z");
        assert_eq!(rest, "a=1&b=2");
        assert!(split_token(Some("a=1")).is_none());
        assert!(split_token(None).is_none());
    }
}
