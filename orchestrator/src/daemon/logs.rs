//! A step's log over HTTP: the whole file, or followed live as server-sent events (`log`
//! events carry `{"text": …}` chunks; one `end` event carries the step's final status).

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, App, blocking, check_run, check_step};

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// `stdout` (default) or `stderr`.
    pub stream: Option<String>,
    pub attempt: Option<u32>,
}

/// The log file a request names, and whether the step is still going.
fn locate(app: &App, run: &str, step: &str, q: &LogQuery) -> Result<(PathBuf, bool), ApiError> {
    let store = &app.engine.store;
    if store.run(run)?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run `{run}` not found"),
        ));
    }
    let rec = store.step(run, step)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run `{run}` has no step `{step}`"),
        )
    })?;
    let file = match q.stream.as_deref() {
        None | Some("stdout") => "stdout.log",
        Some("stderr") => "stderr.log",
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "stream must be stdout or stderr",
            ));
        }
    };
    let dir = match q.attempt {
        Some(n) => app.engine.home.attempt_dir(run, step, n),
        None => match rec.attempts.last() {
            Some(a) => a.dir.clone(),
            None if rec.status.is_final() => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("step `{step}` never ran (status {})", rec.status.as_str()),
                ));
            }
            None => app.engine.home.attempt_dir(run, step, 1),
        },
    };
    let live = !rec.status.is_final()
        && store
            .run(run)?
            .is_some_and(|r| r.status == crate::store::RunStatus::Running);
    Ok((dir.join(file), live))
}

pub async fn get_log(
    State(app): State<App>,
    Path((run, step)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    check_run(&run)?;
    check_step(&step)?;
    let text = blocking(move || {
        let (path, _) = locate(&app, &run, &step, &q)?;
        Ok(std::fs::read(&path).unwrap_or_default())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

struct Follow {
    app: App,
    run: String,
    step: String,
    query: LogQuery,
    pos: u64,
    done: bool,
}

/// New bytes since `pos` (at most 64 KiB), lossily as UTF-8.
fn read_from(path: &std::path::Path, pos: u64) -> (String, u64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), 0);
    };
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return (String::new(), 0);
    }
    let mut buf = Vec::new();
    let n = f.take(64 * 1024).read_to_end(&mut buf).unwrap_or(0);
    (String::from_utf8_lossy(&buf[..n]).into_owned(), n as u64)
}

pub async fn stream_log(
    State(app): State<App>,
    Path((run, step)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check_run(&run)?;
    check_step(&step)?;
    {
        let (app, run, step) = (app.clone(), run.clone(), step.clone());
        let q = LogQuery {
            stream: query.stream.clone(),
            attempt: query.attempt,
        };
        blocking(move || locate(&app, &run, &step, &q).map(|_| ())).await?;
    }
    let state = Follow {
        app,
        run,
        step,
        query,
        pos: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let app = s.app.clone();
            let (run, step) = (s.run.clone(), s.step.clone());
            let q = LogQuery {
                stream: s.query.stream.clone(),
                attempt: s.query.attempt,
            };
            let pos = s.pos;
            let found = tokio::task::spawn_blocking(move || {
                let (path, live) = locate(&app, &run, &step, &q).ok()?;
                let (text, n) = read_from(&path, pos);
                let status = app
                    .engine
                    .store
                    .step(&run, &step)
                    .ok()
                    .flatten()
                    .map(|r| r.status.as_str().to_string());
                Some((text, n, live, status))
            })
            .await
            .ok()
            .flatten();
            let Some((text, n, live, status)) = found else {
                s.done = true;
                let ev = Event::default()
                    .event("end")
                    .data("{\"status\":\"unknown\"}");
                return Some((Ok(ev), s));
            };
            if n > 0 {
                s.pos += n;
                let ev = Event::default()
                    .event("log")
                    .data(json!({ "text": text }).to_string());
                return Some((Ok(ev), s));
            }
            if !live {
                s.done = true;
                let ev = Event::default()
                    .event("end")
                    .data(json!({ "status": status }).to_string());
                return Some((Ok(ev), s));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
