//! The HTTP client of a tuna daemon (`--server URL`, `--token`/`TUNA_TOKEN`): JSON requests,
//! the server's errors turned into exit codes (401/404/409/422 → 2, unreachable or 5xx → 3).

use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde_json::Value;

use super::args::Cli;
use super::exit::Fail;

pub struct Client {
    base: String,
    token: Option<String>,
    http: Http,
    streaming: Http,
}

impl Client {
    /// The client for `--server`, if one was named.
    pub fn from_cli(cli: &Cli) -> Option<Client> {
        let base = cli
            .server
            .as_ref()
            .filter(|s| !s.is_empty())?
            .trim_end_matches('/')
            .to_string();
        let build = |t: Option<Duration>| {
            Http::builder()
                .timeout(t)
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("http client")
        };
        Some(Client {
            base,
            token: cli.token.clone().filter(|t| !t.is_empty()),
            http: build(Some(Duration::from_secs(60))),
            streaming: build(None),
        })
    }

    /// The client, or a usage error naming what needs it.
    pub fn required(cli: &Cli, what: &str) -> Result<Client, Fail> {
        Client::from_cli(cli).ok_or_else(|| {
            Fail::invalid(format!(
                "error: {what} talks to a tuna daemon: pass --server URL (or set TUNA_SERVER)"
            ))
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn auth(&self, r: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn send(&self, r: RequestBuilder) -> Result<Response, Fail> {
        let resp = self.auth(r).send().map_err(|e| self.unreachable(e))?;
        self.answer(resp)
    }

    fn unreachable(&self, e: reqwest::Error) -> Fail {
        Fail::env(format!(
            "error: cannot reach the tuna daemon at {}: {e}",
            self.base
        ))
    }

    /// A response: itself when it is a success, else the error it says.
    fn answer(&self, resp: Response) -> Result<Response, Fail> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        let msg = body["error"].as_str().unwrap_or("").to_string();
        Err(match code.as_u16() {
            401 => Fail::invalid(format!(
                "error: the daemon refused the request (401): {}; pass --token or set TUNA_TOKEN",
                if msg.is_empty() {
                    "no valid token"
                } else {
                    &msg
                }
            )),
            422 if body["diagnostics"].is_array() => Fail::invalid(diagnostics(&body)),
            400 | 404 | 409 | 413 | 422 => Fail::invalid(format!("error: {msg}")),
            _ => Fail::env(format!("error: the daemon answered {code}: {msg}")),
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, Fail> {
        let r = self.send(self.http.get(format!("{}{path}", self.base)))?;
        r.json()
            .map_err(|e| Fail::env(format!("error: bad answer from the daemon: {e}")))
    }

    pub fn get_text(&self, path: &str) -> Result<String, Fail> {
        let r = self.send(self.http.get(format!("{}{path}", self.base)))?;
        r.text()
            .map_err(|e| Fail::env(format!("error: bad answer from the daemon: {e}")))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Fail> {
        let r = self.send(self.http.post(format!("{}{path}", self.base)).json(body))?;
        r.json()
            .map_err(|e| Fail::env(format!("error: bad answer from the daemon: {e}")))
    }

    /// POST with an `Idempotency-Key` drawn once: when the daemon cannot be reached, cuts the
    /// connection or answers 502–504, the same request is sent again (for up to a minute), and
    /// the daemon makes at most one run of it.
    pub fn post_idempotent(&self, path: &str, body: &Value) -> Result<Value, Fail> {
        let key = format!("tuna-{:032x}", rand::random::<u128>());
        let request = || {
            self.auth(
                self.http
                    .post(format!("{}{path}", self.base))
                    .header("Idempotency-Key", &key)
                    .json(body),
            )
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            let last = std::time::Instant::now() + wait > deadline;
            match request().send() {
                Ok(r) if last || !matches!(r.status().as_u16(), 502..=504) => {
                    return self
                        .answer(r)?
                        .json()
                        .map_err(|e| Fail::env(format!("error: bad answer from the daemon: {e}")));
                }
                Err(e) if last || !(e.is_connect() || e.is_timeout() || e.is_request()) => {
                    return Err(self.unreachable(e));
                }
                _ => {}
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(std::time::Duration::from_secs(4));
        }
    }

    pub fn delete(&self, path: &str) -> Result<Value, Fail> {
        let r = self.send(self.http.delete(format!("{}{path}", self.base)))?;
        r.json()
            .map_err(|e| Fail::env(format!("error: bad answer from the daemon: {e}")))
    }

    /// PUT the bytes of a file, streamed from disk (no timeout: a big file takes its time).
    pub fn put_file(&self, path: &str, file: &std::path::Path) -> Result<Value, Fail> {
        let f = std::fs::File::open(file)
            .map_err(|e| Fail::invalid(format!("error: {}: {e}", file.display())))?;
        let len = f
            .metadata()
            .map_err(|e| Fail::invalid(format!("error: {}: {e}", file.display())))?
            .len();
        let r = self.send(
            self.streaming
                .put(format!("{}{path}", self.base))
                .header("content-type", "application/octet-stream")
                .body(reqwest::blocking::Body::sized(f, len)),
        )?;
        r.json()
            .map_err(|e| Fail::env(format!("error: bad answer from the daemon: {e}")))
    }

    /// A streaming GET (server-sent events): the response to read lines from.
    pub fn stream(&self, path: &str) -> Result<Response, Fail> {
        self.send(
            self.streaming
                .get(format!("{}{path}", self.base))
                .header("accept", "text/event-stream"),
        )
    }
}

/// A 422's diagnostics as `file:line:col: message` lines (with help).
fn diagnostics(body: &Value) -> String {
    let mut out = String::new();
    for d in body["diagnostics"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "error: {}:{}:{}: {}\n",
            d["file"].as_str().unwrap_or("workflow"),
            d["line"],
            d["column"],
            d["message"].as_str().unwrap_or("")
        ));
        if let Some(h) = d["help"].as_str() {
            out.push_str(&format!("  help: {h}\n"));
        }
    }
    out.trim_end().to_string()
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
