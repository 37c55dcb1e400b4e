//! Measures the local runner's cost per job: N jobs that each `touch` one file, at most J at
//! once, launched and watched through the `Runner` trait.
//!
//! `cargo run --release -p tuna-runners --example launch_overhead -- SHIM [N] [J]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tuna_runners::local::{LocalConfig, LocalRunner, journal};
use tuna_runners::{Job, Runner};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let shim = args.next().expect("usage: launch_overhead SHIM [N] [J]");
    let n: usize = args.next().map_or(1000, |a| a.parse().expect("N"));
    let j: usize = args.next().map_or(2, |a| a.parse().expect("J"));
    let root = tempfile::TempDir::new().expect("temp dir");
    let runner = Arc::new(LocalRunner::new(LocalConfig {
        shim: shim.into(),
        ..LocalConfig::default()
    }));
    let slots = Arc::new(Semaphore::new(j));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let attempt_dir = root.path().join("run").join(format!("s{i}")).join("1");
        std::fs::create_dir_all(&attempt_dir).expect("attempt dir");
        let job = Job {
            run_id: "bench".into(),
            step: format!("s{i}"),
            attempt: 1,
            script: "touch f".into(),
            env: Default::default(),
            attempt_dir,
            timeout: None,
            wait_for_capacity: None,
            resources: Default::default(),
            stage: Vec::new(),
            outputs: Vec::new(),
            secrets: Vec::new(),
            workdir: None,
        };
        let (runner, permit) = (
            runner.clone(),
            slots.clone().acquire_owned().await.expect("semaphore"),
        );
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let handle = runner.launch(&job).await.expect("launch");
            let t1 = Instant::now();
            let outcome = runner.watch(&handle).await.expect("watch");
            let t2 = Instant::now();
            drop(permit);
            assert!(outcome.success(), "{outcome:?}");
            let record = journal::exit_of(&job.attempt_dir)
                .expect("journal")
                .expect("exit record");
            (t1 - t0, t2 - t1, record.ended_ms - record.started_ms)
        }));
    }
    let (mut launch, mut watch, mut shim_ms) = (Duration::ZERO, Duration::ZERO, 0);
    for task in tasks {
        let (l, w, s) = task.await.expect("task");
        (launch, watch, shim_ms) = (launch + l, watch + w, shim_ms + s);
    }
    let elapsed = start.elapsed();
    println!(
        "mean launch {:?}, mean watch {:?}, mean shim claim-to-exit {} us",
        launch / n as u32,
        watch / n as u32,
        shim_ms * 1000 / n as u64
    );
    println!(
        "{n} jobs at -j{j}: {elapsed:?} ({:?} per job)",
        elapsed / n as u32
    );
}
