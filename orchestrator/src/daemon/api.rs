//! The HTTP API (`/api/v1/…`, JSON): submit, list and inspect runs, step logs (also as
//! server-sent events), cancel, resume, schedules, the leaderboard. Documented in docs/api.md
//! and docs/openapi.yaml. Every route but `/api/v1/health` needs a bearer token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::names::{valid_run_id, valid_step, valid_workflow};
use super::service::{Daemon, DaemonError, Submission, Submitted};
use crate::engine::{Board, DEFAULT_THRESHOLD};
use crate::engine::{RunSummary, RunView};

pub type App = Arc<Daemon>;

/// An API error: a status and `{"error": …}` (plus `diagnostics` for a 422).
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub Value);

impl ApiError {
    pub fn new(code: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError(code, json!({ "error": msg.into() }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<DaemonError> for ApiError {
    fn from(e: DaemonError) -> Self {
        match e {
            DaemonError::Invalid(d) => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": "the workflow does not validate", "diagnostics": d }),
            ),
            DaemonError::Refused(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            DaemonError::NotFound(r) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("run `{r}` not found"))
            }
            DaemonError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            DaemonError::Project(p) => p.into(),
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking work (sled, file reads, YAML) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

pub fn check_run(id: &str) -> ApiResult<()> {
    if valid_run_id(id) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed run id"))
    }
}

pub fn check_step(step: &str) -> ApiResult<()> {
    if valid_step(step) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed step name",
        ))
    }
}

pub async fn health() -> Json<Value> {
    Json(json!({ "ok": true, "version": env!("CARGO_PKG_VERSION") }))
}

pub async fn submit(
    State(app): State<App>,
    headers: HeaderMap,
    Json(sub): Json<Submission>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let key = idempotency_key(&headers)?;
    let s = blocking(move || Ok(app.submit_once(&sub, false, key.as_deref())?)).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// The `Idempotency-Key` header: 1–200 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_string()))
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Idempotency-Key must be 1 to 200 visible ASCII characters",
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct RunFilter {
    pub status: Option<String>,
    pub workflow: Option<String>,
    pub limit: Option<usize>,
}

/// Runs, newest first, optionally filtered by status and workflow.
pub async fn list_runs(
    State(app): State<App>,
    Query(f): Query<RunFilter>,
) -> ApiResult<Json<Vec<RunSummary>>> {
    let list = blocking(move || Ok(RunSummary::list(&app.engine.store)?)).await?;
    let mut list: Vec<RunSummary> = list
        .into_iter()
        .filter(|r| f.status.as_ref().is_none_or(|s| &r.status == s))
        .filter(|r| f.workflow.as_ref().is_none_or(|w| &r.workflow == w))
        .collect();
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    list.truncate(f.limit.unwrap_or(1000));
    Ok(Json(list))
}

/// A run: its view, each step's `needs` (the DAG), its scheduled time and cost.
pub fn run_detail(app: &Daemon, id: &str) -> ApiResult<Value> {
    let store = &app.engine.store;
    let rec = store
        .run(id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("run `{id}` not found")))?;
    let view = RunView::build(&rec, store.steps(id)?);
    let needs: BTreeMap<String, Vec<String>> =
        crate::dag::load_str(&rec.workflow_path, &rec.workflow_text)
            .map(|dag| {
                dag.topo_order()
                    .iter()
                    .map(|s| (s.clone(), dag.needs(s).to_vec()))
                    .collect()
            })
            .unwrap_or_default();
    let mut v = serde_json::to_value(&view).expect("json");
    v["needs"] = json!(needs);
    v["scheduled_time"] = json!(rec.scheduled_time);
    v["driven_here"] = json!(app.is_driving(id));
    Ok(v)
}

pub async fn get_run(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    check_run(&id)?;
    Ok(Json(blocking(move || run_detail(&app, &id)).await?))
}

pub async fn cancel(
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_run(&id)?;
    let id2 = id.clone();
    blocking(move || Ok(app.cancel(&id2)?)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "cancelling": id }))))
}

pub async fn resume(
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_run(&id)?;
    let id2 = id.clone();
    blocking(move || Ok(app.resume(&id2)?)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "resumed": id }))))
}

pub async fn list_schedules(State(app): State<App>) -> ApiResult<Json<Value>> {
    let list = blocking(move || Ok(app.scheduler.list(3)?)).await?;
    Ok(Json(json!(list)))
}

/// Registers a workflow that has `schedule:` (422 for one without).
pub async fn add_schedule(
    State(app): State<App>,
    Json(sub): Json<Submission>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let s = blocking(move || Ok(app.submit_as(&sub, true)?)).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

pub async fn remove_schedule(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !valid_workflow(&name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            crate::workflow::names::problem("schedule", &name, "[a-z0-9-]+"),
        ));
    }
    let n = name.clone();
    let gone = blocking(move || Ok(app.scheduler.remove(&n)?)).await?;
    if !gone {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no schedule `{name}`"),
        ));
    }
    Ok(Json(json!({ "removed": name })))
}

#[derive(Debug, Deserialize)]
pub struct BoardQuery {
    pub threshold: Option<f64>,
    pub suite: Option<String>,
}

pub fn board(app: &Daemon, q: &BoardQuery) -> ApiResult<Board> {
    let mut rows = app.engine.store.leader_rows()?;
    if let Some(s) = &q.suite {
        rows.retain(|r| &r.suite == s);
    }
    Ok(Board::build(rows, q.threshold.unwrap_or(DEFAULT_THRESHOLD)))
}

pub async fn leaderboard(
    State(app): State<App>,
    Query(q): Query<BoardQuery>,
) -> ApiResult<Json<Board>> {
    Ok(Json(blocking(move || board(&app, &q)).await?))
}
