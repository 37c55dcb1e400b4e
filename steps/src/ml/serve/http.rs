//! The HTTP face of the model server (axum): routes, JSON bodies, and errors as JSON with a 4xx
//! status for bad requests — a malformed request never brings the server down. Model work runs
//! on blocking threads, one request at a time.

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::api::{DecodeRequest, ProcessRequest, TokenizeRequest};
use super::served::ServedModel;

type Shared = Arc<Mutex<ServedModel>>;

/// An error answer: status and message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// Runs `f` on the engine on a blocking thread; panics and model errors become 500s.
async fn with_engine<T: Send + 'static>(
    engine: Shared,
    f: impl FnOnce(&ServedModel) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let guard = engine.lock().unwrap_or_else(|p| p.into_inner());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&guard))).unwrap_or_else(|_| {
            Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the model failed on this request".into(),
            ))
        })
    })
    .await
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })?
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn process(State(engine): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let req: ProcessRequest = parse(&body)?;
    let out = with_engine(engine, move |e| {
        if let Some(p) = req.problem(e.max_positions()) {
            return Err(bad(p));
        }
        e.process(&req).map_err(internal)
    })
    .await?;
    Ok(axum::Json(out).into_response())
}

async fn tokenize(State(engine): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let req: TokenizeRequest = parse(&body)?;
    let out = with_engine(engine, move |e| e.tokenize(&req).map_err(internal)).await?;
    Ok(axum::Json(out).into_response())
}

async fn decode(State(engine): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let req: DecodeRequest = parse(&body)?;
    let out = with_engine(engine, move |e| {
        if !e.valid_ids(&req.tokens) {
            return Err(bad("tokens holds ids outside the vocabulary"));
        }
        e.decode(&req).map_err(internal)
    })
    .await?;
    Ok(axum::Json(out).into_response())
}

/// The routes: `POST /process`, `/tokenize`, `/decode`; anything else is a JSON 404/405.
pub fn router(engine: ServedModel) -> Router {
    let shared: Shared = Arc::new(Mutex::new(engine));
    Router::new()
        .route("/process", post(process))
        .route("/tokenize", post(tokenize))
        .route("/decode", post(decode))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint (POST /process, /tokenize, /decode)".into(),
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST with a JSON body".into(),
            )
        })
        .with_state(shared)
}

/// Serves `engine` on `listener` until `shutdown` completes.
pub async fn serve(
    engine: ServedModel,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}
