//! Helpers for the daemon tests: a real `tuna serve` on 127.0.0.1 (any free port), raw HTTP
//! requests, and `tuna` client commands pointed at it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tuna_tests::{Project, Run};

pub const TOKEN: &str = "e2e-token-0123456789abcdef";

pub struct Serve {
    pub child: Child,
    pub url: String,
    pub addr: String,
}

impl Serve {
    /// Starts `tuna serve --listen 127.0.0.1:0` in the project and waits for its address.
    pub fn start(p: &Project, env: &[(&str, &str)]) -> Serve {
        Serve::start_with(p, env, &[])
    }

    /// As [`Serve::start`], with more `tuna serve` arguments (`--listen ADDR` among them
    /// replaces the free port).
    pub fn start_with(p: &Project, env: &[(&str, &str)], args: &[&str]) -> Serve {
        let mut cmd = p.tuna();
        cmd.arg("serve");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env("TUNA_SERVE_TOKENS", TOKEN)
            .env_remove("TUNA_SERVER")
            .env_remove("TUNA_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tuna serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(u) = line.strip_prefix("listening on ") {
                    let _ = tx.send(u.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("tuna serve printed its address");
        let addr = url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string();
        Serve { child, url, addr }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// A raw HTTP request; (status, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        http(&self.addr, method, path, token, body)
    }

    /// GET with the token; the JSON body (asserting 2xx).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.http("GET", path, Some(TOKEN), None);
        assert!((200..300).contains(&code), "GET {path}: {code} {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// `tuna ARGS…` against this daemon.
    pub fn tuna(&self, p: &Project, args: &[&str]) -> Run {
        let out = p
            .tuna()
            .env("TUNA_SERVER", &self.url)
            .env("TUNA_TOKEN", TOKEN)
            .args(args)
            .output()
            .expect("run tuna");
        Run::from(out)
    }

    pub fn run_status(&self, run: &str) -> String {
        self.get_json(&format!("/api/v1/runs/{run}"))["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut headers = Vec::new();
    let auth;
    if let Some(t) = token {
        auth = format!("Bearer {t}");
        headers.push(("Authorization", auth.as_str()));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        headers.push(("Content-Type", "application/json"));
    }
    let (code, _, body) = request(addr, method, path, &headers, body);
    (code, body)
}

/// A raw HTTP request with the given headers (`Content-Length` is added for a body);
/// (status, head, body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    exchange(TcpStream::connect(addr).expect("connect"), &req)
}

/// Sends a whole raw request on an open connection and reads the answer to the end;
/// (status, head, body).
pub fn exchange(mut s: TcpStream, raw_request: &str) -> (u16, String, String) {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // A connection the daemon refused may be closed already: the answer is then empty (0).
    let _ = s.write_all(raw_request.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_answer(&raw)
}

/// An HTTP answer read to its end: (status, head, body; de-chunked); status 0 for none.
pub fn parse_answer(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (code, head.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A submission body for the API.
pub fn submission(text: &str, file: &str) -> String {
    serde_json::json!({ "workflow": text, "file": file }).to_string()
}
