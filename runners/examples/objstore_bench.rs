//! Moves one blob into an object-store artifact store and back out, and prints the bytes and
//! seconds of each direction (tab-separated, a header first), for benchmark scripts:
//!
//! ```text
//! cargo run --release -p tuna-runners --example objstore_bench -- [--size-mib 100]
//!     [--url s3://BUCKET/PREFIX [--endpoint URL] [--region R]]
//! ```
//!
//! Without `--url` it starts moto on 127.0.0.1 (`.venv-s3`, scripts/setup-s3.sh). With one,
//! credentials come from the usual AWS environment variables. The blob is new each run (so
//! the upload is not skipped) and deleted afterwards.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tuna_runners::BlobStore;
use tuna_runners::objstore::{ObjectBlobs, ObjectStoreConfig};
use tuna_tests::moto::{self, Moto};

fn main() {
    if let Err(e) = run() {
        eprintln!("objstore_bench: {e}");
        std::process::exit(2);
    }
}

/// Everything, so that a failure still stops the moto it started (on drop).
fn run() -> Result<(), String> {
    let mut size_mib: u64 = 100;
    let mut cfg = ObjectStoreConfig {
        url: String::new(),
        endpoint: None,
        region: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--size-mib" => {
                size_mib = value.parse().map_err(|_| "--size-mib takes a number")?;
            }
            "--url" => cfg.url = value,
            "--endpoint" => cfg.endpoint = Some(value),
            "--region" => cfg.region = Some(value),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    let mut _moto = None;
    let store = if cfg.url.is_empty() {
        let m = Moto::start();
        cfg.url = format!("s3://{}/bench", moto::BUCKET);
        cfg.endpoint = Some(m.endpoint());
        let store = ObjectBlobs::with_env("bench", &cfg, &m.env());
        _moto = Some(m);
        store
    } else {
        ObjectBlobs::new("bench", &cfg)
    }
    .map_err(|e| e.to_string())?;
    store
        .check(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;

    let size = size_mib << 20;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("bench {nanos}");
    let source = || {
        blake3::Hasher::new()
            .update(seed.as_bytes())
            .finalize_xof()
            .take(size)
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(source()).map_err(|e| e.to_string())?;
    let hex = hasher.finalize().to_hex().to_string();

    let mut session = store.session().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let sent = session
        .put(&hex, false, &mut source())
        .map_err(|e| e.to_string())?;
    let up = started.elapsed();

    let started = Instant::now();
    let mut reader = session.open(&hex).map_err(|e| e.to_string())?;
    let mut back = blake3::Hasher::new();
    let mut buf = vec![0; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        back.update(&buf[..n]);
        got += n as u64;
    }
    let down = started.elapsed();
    drop(reader);
    if back.finalize().to_hex().as_str() != hex {
        return Err("the blob came back different".into());
    }
    let _ = store.remove(std::slice::from_ref(&hex), Duration::from_secs(30));

    println!("direction\tbytes\tseconds\tMiB/s");
    for (direction, bytes, took) in [("up", sent, up), ("down", got, down)] {
        let secs = took.as_secs_f64();
        let rate = bytes as f64 / (1 << 20) as f64 / secs.max(1e-9);
        println!("{direction}\t{bytes}\t{secs:.3}\t{rate:.1}");
    }
    Ok(())
}
