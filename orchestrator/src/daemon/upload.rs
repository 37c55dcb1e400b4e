//! The upload routes: `POST /api/v1/blobs/missing` (check a project manifest against the
//! limits; which of its blobs the store lacks), `PUT /api/v1/blobs/{digest}` (one blob,
//! streamed into the store and checked against its name) and `GET /api/v1/metrics` (what
//! came in). Documented in docs/api.md ("Submitting a project").

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::api::{ApiError, App, blocking};
use crate::project::{BlobName, Limits, Manifest, ProjectError, store_blob};

/// The largest JSON body of a route that carries a manifest (a check or a submission): room
/// for the default limit of files.
pub const MAX_MANIFEST_BODY: usize = 32 << 20;

/// Chunks of an upload in flight between the connection and the thread writing the file.
const IN_FLIGHT: usize = 16;

/// The daemon's upload limits and counters.
#[derive(Debug, Default)]
pub struct Uploads {
    pub limits: Limits,
    bytes_received: AtomicU64,
    blobs_stored: AtomicU64,
    blobs_refused: AtomicU64,
}

/// What came in through `PUT /api/v1/blobs/…` since the daemon started.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct UploadStats {
    /// Bytes read from upload bodies, stored or not.
    pub bytes_received: u64,
    pub blobs_stored: u64,
    /// Uploads refused: content that did not match its name, or over the per-file limit.
    pub blobs_refused: u64,
}

impl Uploads {
    pub fn new(limits: Limits) -> Uploads {
        Uploads {
            limits,
            ..Uploads::default()
        }
    }

    pub fn stats(&self) -> UploadStats {
        UploadStats {
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            blobs_stored: self.blobs_stored.load(Ordering::Relaxed),
            blobs_refused: self.blobs_refused.load(Ordering::Relaxed),
        }
    }
}

impl From<ProjectError> for ApiError {
    fn from(e: ProjectError) -> Self {
        let code = if e.is_too_large() {
            StatusCode::PAYLOAD_TOO_LARGE
        } else if e.is_internal() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        ApiError::new(code, e.to_string())
    }
}

fn limits_json(l: &Limits) -> Value {
    json!({
        "max_file_bytes": l.max_file,
        "max_submission_bytes": l.max_total,
        "max_files": l.max_files,
    })
}

/// Checks a manifest; the blobs to upload before submitting it.
pub async fn missing(
    State(app): State<App>,
    Json(m): Json<Manifest>,
) -> Result<Json<Value>, ApiError> {
    let a = app.clone();
    let missing = blocking(move || Ok(a.snapshots.missing(&m, &a.uploads.limits)?)).await?;
    Ok(Json(json!({
        "missing": missing,
        "limits": limits_json(&app.uploads.limits),
    })))
}

/// Takes in one blob: streamed to a temp file in the store, hashed on the way, no larger than
/// the per-file limit, named only if it hashes to `name`.
pub async fn put_blob(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name: BlobName = name.parse().map_err(|e: crate::project::BadBlobName| {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    })?;
    let max = app.uploads.limits.max_file;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        app.uploads.blobs_refused.fetch_add(1, Ordering::Relaxed);
        return Err(ProjectError::UploadTooLarge { limit: max }.into());
    }
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let writer = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                rx,
                chunk: Bytes::new(),
            };
            let s = &app.snapshots;
            store_blob(s.cas(), &s.aliases, &name, &mut reader, max)
        })
    };
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let item = match chunk {
            Ok(bytes) => {
                app.uploads
                    .bytes_received
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(bytes)
            }
            Err(e) => Err(io::Error::other(format!("the upload broke off: {e}"))),
        };
        let failed = item.is_err();
        // The writer stops taking chunks when it refuses the blob (over the limit).
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let stored = writer
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match stored {
        Ok((digest, size)) => {
            app.uploads.blobs_stored.fetch_add(1, Ordering::Relaxed);
            Ok((
                StatusCode::CREATED,
                Json(json!({ "name": name, "digest": digest, "size": size })),
            ))
        }
        Err(e) => {
            app.uploads.blobs_refused.fetch_add(1, Ordering::Relaxed);
            Err(e.into())
        }
    }
}

/// Counters: what uploads brought in since the daemon started.
pub async fn metrics(State(app): State<App>) -> Json<Value> {
    Json(json!({
        "uploads": app.uploads.stats(),
        "limits": limits_json(&app.uploads.limits),
        "runs_driven": app.driving_count(),
    }))
}

/// The blocking side of an upload: reads the chunks the connection hands over.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}
