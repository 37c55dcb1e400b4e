//! The control socket: the process that owns the store (a `tuna run`, later the daemon)
//! answers other tuna processes on `$TUNA_HOME/control.sock`, one JSON request per line.
//!
//! Requests: `{"op":"runs"}`, `{"op":"status","run":ID}`, `{"op":"cancel","run":ID}`.
//! Answers: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::engine::Engine;
use super::events::Control;
use super::view::{RunSummary, RunView};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Runs,
    Status { run: String },
    Cancel { run: String },
}

/// Serves the control socket until the process ends. A stale socket file is replaced.
pub async fn serve(engine: Arc<Engine>) -> std::io::Result<()> {
    let path = engine.home.control_socket();
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let engine = engine.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => answer(&engine, req),
                    Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
                };
                let mut bytes = serde_json::to_vec(&answer).expect("json");
                bytes.push(b'\n');
                if w.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn answer(engine: &Engine, req: Request) -> Value {
    let result: Result<Value, String> = match req {
        Request::Runs => RunSummary::list(&engine.store)
            .map(|r| json!(r))
            .map_err(|e| e.to_string()),
        Request::Status { run } => match RunView::load(&engine.store, &run) {
            Ok(Some(v)) => Ok(json!(v)),
            Ok(None) => Err(format!("run `{run}` not found")),
            Err(e) => Err(e.to_string()),
        },
        Request::Cancel { run } => {
            if engine.control(&run, Control::Cancel) {
                Ok(json!({"cancelled": run}))
            } else {
                Err(format!(
                    "run `{run}` is not running in this tuna process (pid {})",
                    std::process::id()
                ))
            }
        }
    };
    match result {
        Ok(data) => json!({"ok": true, "data": data}),
        Err(error) => json!({"ok": false, "error": error}),
    }
}

/// Why a request to the store's owner got no answer of its own.
#[derive(Debug)]
pub enum AskError {
    /// No answer: the socket is not there yet or any more, or the owner closed the connection
    /// before answering (it is starting, or its run is ending).
    Unreachable(String),
    /// The owner answered with an error.
    Refused(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Unreachable(m) | AskError::Refused(m) => f.write_str(m),
        }
    }
}

/// Asks the store's owner.
pub fn request(socket: &Path, req: &Request) -> Result<Value, AskError> {
    let gone = |e: String| AskError::Unreachable(e);
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        gone(format!(
            "cannot reach the tuna process that owns this store ({}): {e}",
            socket.display()
        ))
    })?;
    let mut line = serde_json::to_vec(req).expect("json");
    line.push(b'\n');
    let lost = |e: std::io::Error| gone(format!("the tuna process that owns this store: {e}"));
    stream.write_all(&line).map_err(lost)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(lost)?;
    if !reply.ends_with('\n') {
        return Err(gone(
            "the tuna process that owns this store closed the connection before it answered".into(),
        ));
    }
    let v: Value = serde_json::from_str(&reply)
        .map_err(|e| AskError::Refused(format!("bad answer from the owner: {e}")))?;
    if v["ok"].as_bool() == Some(true) {
        Ok(v["data"].clone())
    } else {
        Err(AskError::Refused(
            v["error"].as_str().unwrap_or("unknown error").to_string(),
        ))
    }
}
