//! The benchmark behind `bench/ray_artifacts.py` (ignored by default; run with `--ignored`): a
//! 100 MiB output made by a step on Ray and read by a step here, through each artifact mode —
//! the shared folder, the bucket with every output brought back, the bucket with the output
//! kept there (`keep_remote_over: 64MiB`) until the local step needs it. Prints a table of the
//! bytes in the runner's store and in the local store after the run, and the times.

use std::path::Path;
use std::time::{Duration, Instant};

use tuna_runners::BlobStore;
use tuna_tests::Project;

use super::{Place, cluster, command, inventory};

const SIZE: u64 = 100 << 20;

const WF: &str = r#"
name: ray-artifacts-bench
steps:
  produce:
    runs-on: ray
    run: head -c 104857600 /dev/urandom > big.bin
    outputs: [big.bin]
  consume:
    run: wc -c < ${{ steps.produce.outputs.big.bin }} > n.txt
    outputs: [n.txt]
"#;

struct Row {
    mode: &'static str,
    stored: u64,
    here: u64,
    produce_s: f64,
    consume_s: f64,
    total_s: f64,
}

fn seconds(status: &serde_json::Value, step: &str) -> f64 {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == step)
        .and_then(|s| s["duration_s"].as_f64())
        .unwrap_or(f64::NAN)
}

/// Runs the workflow once in `p`; (produce, consume, whole run) in seconds.
fn run(p: &Project) -> (f64, f64, f64) {
    let started = Instant::now();
    let out = command(p, &["run", "wf.yaml"]).output().expect("run tuna");
    let total = started.elapsed().as_secs_f64();
    let r = tuna_tests::Run::from(out).ok();
    let status = p.status(&r.run_id());
    let n = std::fs::read_to_string(
        p.home()
            .join(format!("runs/{}/consume/1/work/n.txt", r.run_id())),
    )
    .unwrap();
    assert_eq!(n.trim(), SIZE.to_string());
    (
        seconds(&status, "produce"),
        seconds(&status, "consume"),
        total,
    )
}

/// Bytes of the regular files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn shared_row() -> Row {
    let c = cluster();
    let shared = tempfile::tempdir().unwrap();
    let p = Project::new();
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n  local: {{ type: local, slots: 2 }}\n  ray:\n    type: ray\n    \
             address: {}\n    token_env: TUNA_TEST_RAY_TOKEN\n    \
             artifacts: {{ shared: {} }}\n",
            c.address(),
            shared.path().display()
        ),
    );
    p.file("wf.yaml", WF);
    let (produce_s, consume_s, total_s) = run(&p);
    Row {
        mode: "shared folder",
        stored: bytes_under(&shared.path().join("cas")),
        here: bytes_under(&p.home().join("cas/objects")),
        produce_s,
        consume_s,
        total_s,
    }
}

fn bucket_row(mode: &'static str, extra: &str) -> Row {
    let place = Place::new("bench");
    let p = Project::new();
    inventory(&p, &place, &place.url, extra);
    p.file("wf.yaml", WF);
    let (produce_s, consume_s, total_s) = run(&p);
    let stored = place
        .store()
        .list(Duration::from_secs(30))
        .unwrap()
        .iter()
        .map(|b| b.size)
        .sum();
    Row {
        mode,
        stored,
        here: bytes_under(&p.home().join("cas/objects")),
        produce_s,
        consume_s,
        total_s,
    }
}

#[test]
#[ignore = "a benchmark: bench/ray_artifacts.py"]
fn bench_a_100_mib_output_through_each_artifact_mode() {
    // The Ray head, moto and the `tuna` build come before anything is timed.
    cluster();
    tuna_tests::tuna_bin();
    let rows = [
        shared_row(),
        bucket_row("bucket (S3/moto), all back", ""),
        bucket_row(
            "bucket (S3/moto), kept over 64MiB",
            "    keep_remote_over: 64MiB\n",
        ),
    ];
    println!(
        "\n| artifact mode | bytes in the runner's store | bytes in the local store | produce (Ray) | consume (local) | tuna run |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.2} s | {:.2} s | {:.2} s |",
            r.mode, r.stored, r.here, r.produce_s, r.consume_s, r.total_s
        );
    }
}
