//! Fuzzes the daemon's request handling in process: the real axum router of `tuna serve`
//! (`tuna::daemon::router`, through tower's `oneshot`) over a daemon whose inventory has no
//! runners, so every workflow that validates is refused at placement and nothing ever runs.
//! Requests: submit and schedule bodies (JSON `Submission`s around mutated and generated
//! workflows, or broken JSON: truncated, deep, wrong types, huge numbers), every route with
//! fuzzed ids, step and schedule names and query strings, and fuzzed `Authorization` headers.
//!
//! `cargo run --release --example fuzz_api -- --seconds 60 [--iterations N] [--seed X]`
//! prints requests/s, status codes, the slowest request and peak memory; exits 1 if a request
//! panicked or took over a second (saved under `target/fuzz-findings/fuzz_api`).

#[path = "../fuzz_common/mod.rs"]
mod fuzz_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{TimeZone, Utc};
use fuzz_common::{Options, Rng, drive, mutate};
use serde_json::json;
use tower::ServiceExt;
use tuna::daemon::{Daemon, FakeClock, Scheduler, Submission, Tokens, Uploads, router};
use tuna::engine::{Engine, Home, Inventory, Quiet};
use tuna::project::{Manifest, ManifestFile};

const TOKEN: &str = "fuzz-token-0123456789abcdef";

const PATHS: &[&str] = &[
    "/api/v1/runs",
    "/api/v1/runs/{id}",
    "/api/v1/runs/{id}/cancel",
    "/api/v1/runs/{id}/resume",
    "/api/v1/runs/{id}/steps/{step}/log",
    "/api/v1/schedules",
    "/api/v1/schedules/{name}",
    "/api/v1/leaderboard",
    "/api/v1/health",
    "/api/v1/metrics",
    "/api/v1/blobs/missing",
    "/api/v1/blobs/{digest}",
    "/runs/{id}",
    "/runs/{id}/steps/{step}",
    "/schedules",
    "/leaderboard",
    "/",
    "/nope",
];
const SEGMENTS: &[&str] = &[
    "20240101-000000-abcd",
    "x",
    "..",
    "%2e%2e",
    "%00",
    "a%2Fb",
    "%ZZ",
    "",
    "-",
    "a b",
    "ü",
    "%F0%9F%98%80",
    "0000000000000000000000000000000000000000000000000000000000000000000",
    "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "b3:AF13",
];
const QUERIES: &[&str] = &[
    "",
    "?status=passed",
    "?limit=99999999999999999999",
    "?limit=-1",
    "?threshold=NaN",
    "?threshold=1e999",
    "?suite=%00",
    "?token=fuzz-token-0123456789abcdef",
    "?a&&&b==",
    "?workflow=x&workflow=y",
    "?%",
    "?token=",
];

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for dir in ["tests/corpus/valid", "tests/corpus/invalid", "workflows"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("corpus folder")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        out.extend(files.iter().map(|f| std::fs::read(f).expect("read")));
    }
    out
}

/// A project manifest with hostile paths, digests and sizes.
fn manifest(rng: &mut Rng) -> Manifest {
    let mut m = Manifest::default();
    for _ in 0..rng.below(4) {
        let file = json!({
            "path": rng.pick(&["data/a.txt", "../x", "/etc/passwd", "", "a//b", "a\u{0}b", "."]),
            "digest": rng.pick(&SEGMENTS[SEGMENTS.len() - 3..]),
            "size": *rng.pick(&[0u64, 1, 1 << 40, u64::MAX]),
            "mode": *rng.pick(&[0o644u32, 0o755, u32::MAX]),
        });
        if let Ok(f) = serde_json::from_value::<ManifestFile>(file) {
            m.files.push(f);
        }
    }
    if rng.one_in(4) {
        m.dirs.push(rng.pick(&["empty", "..", "/tmp"]).to_string());
    }
    m
}

/// One request as text: `METHOD PATH\nAUTHORIZATION\nBODY`.
fn request(rng: &mut Rng, seeds: &[&[u8]]) -> Vec<u8> {
    let mut path = rng.pick(PATHS).to_string();
    for hole in ["{id}", "{step}", "{name}", "{digest}"] {
        path = path.replace(hole, rng.pick::<&str>(SEGMENTS));
    }
    path.push_str(rng.pick::<&str>(QUERIES));
    let method = *rng.pick(&["GET", "POST", "POST", "DELETE", "PUT"]);
    let auth = match rng.below(8) {
        0 => String::new(),
        1 => "Bearer nope".to_string(),
        2 => format!("bearer {TOKEN}"),
        3 => format!("Bearer {TOKEN}\u{0}"),
        _ => format!("Bearer {TOKEN}"),
    };
    let body: Vec<u8> = if method == "POST" {
        let workflow = if rng.one_in(4) {
            mutate::generate(rng)
        } else {
            let base = rng.pick(seeds).to_vec();
            mutate::mutate(rng, &base, seeds)
        };
        let mut params = BTreeMap::new();
        for _ in 0..rng.below(3) {
            params.insert(
                rng.pick(&["lr", "x", "nope", "", "base-model"]).to_string(),
                rng.pick(&["1", "$(id)", "", "\n"]).to_string(),
            );
        }
        let sub = Submission {
            workflow: String::from_utf8_lossy(&workflow).into_owned(),
            params,
            file: rng.one_in(2).then(|| rng.pick(SEGMENTS).to_string()),
            no_cache: rng.one_in(2),
            jobs: rng.one_in(3).then(|| rng.below(1 << 20)),
            project: rng.one_in(3).then(|| manifest(rng)),
        };
        let json = serde_json::to_vec(&sub).expect("json");
        match rng.below(6) {
            0 => mutate::mutate(rng, &json, seeds),
            1 => format!("{}{}", "[".repeat(rng.size(100_000)), "1").into_bytes(),
            2 => br#"{"workflow": 1e999, "params": [], "jobs": -1}"#.to_vec(),
            _ => json,
        }
    } else {
        Vec::new()
    };
    let mut out = format!("{method} {path}\n{auth}\n").into_bytes();
    out.extend(body);
    out
}

fn main() {
    let opts = Options::from_args("fuzz_api");
    let home = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let app = rt.block_on(async {
        let inventory = Inventory {
            runners: BTreeMap::new(),
        };
        let engine = Arc::new(
            Engine::open(
                Home {
                    root: home.path().join(".tuna"),
                },
                &inventory,
                Arc::new(Quiet),
                &tuna_runners::StepEnv::Clean { pass: vec![] },
            )
            .expect("engine"),
        );
        let clock = Arc::new(FakeClock::new(
            Utc.with_ymd_and_hms(2024, 3, 9, 0, 0, 0).unwrap(),
        ));
        let scheduler = Scheduler::new(engine.store.clone(), clock);
        Arc::new(Daemon::new(
            engine,
            scheduler,
            Uploads::default(),
            tokio::runtime::Handle::current(),
        ))
    });
    let tokens = Tokens::load(None, Some(TOKEN)).expect("tokens");
    let routes = router(app, tokens);
    let seeds = corpus();
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let ok = drive(
        "fuzz_api",
        &opts,
        |rng: &mut Rng| request(rng, &seeds),
        |input| {
            let text = input.splitn(3, |&b| b == b'\n').collect::<Vec<_>>();
            let line = String::from_utf8_lossy(text[0]);
            let (method, path) = line.split_once(' ').unwrap_or(("GET", "/"));
            let auth = text.get(1).map(|a| a.to_vec()).unwrap_or_default();
            let body = text.get(2).map(|b| b.to_vec()).unwrap_or_default();
            let mut req = Request::builder().method(method).uri(path);
            if !auth.is_empty() {
                req = req.header("authorization", auth);
            }
            let Ok(req) = req
                .header("content-type", "application/json")
                .body(Body::from(body))
            else {
                return "unbuildable".into();
            };
            let routes = routes.clone();
            rt.block_on(async move {
                let resp = routes.oneshot(req).await.expect("infallible");
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), 4 << 20).await;
                // A 5xx is the daemon failing on bad input: a finding, like a panic.
                assert!(
                    status < 500,
                    "the daemon answered {status}: {}",
                    body.map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                );
                status.to_string()
            })
        },
    );
    drop(routes);
    drop(rt);
    drop(home);
    std::process::exit(if ok { 0 } else { 1 });
}
