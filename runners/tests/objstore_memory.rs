//! A 200 MiB blob through the object-store artifact mode (moto on 127.0.0.1), in and out, with
//! the test process's peak memory measured: blobs stream, they are never held whole. Alone in
//! its test binary so that no other test's memory counts.

use std::io::Read;
use std::time::Instant;

use tuna_runners::BlobStore;
use tuna_runners::objstore::{ObjectBlobs, ObjectStoreConfig};
use tuna_tests::moto::{self, Moto};

const SIZE: u64 = 200 << 20;
/// Parts and ranges in flight take a few tens of MiB; the whole blob would take 200.
const MAX_GROWTH: u64 = 100 << 20;

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Starts a fresh peak-memory measurement; returns the memory in use now.
fn reset_peak() -> u64 {
    // "5" resets VmHWM to the current resident size.
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS");
    status_bytes("VmRSS:")
}

/// The pseudo-random stream of `SIZE` bytes the test moves.
fn source() -> impl Read {
    blake3::Hasher::new()
        .update(b"200 MiB")
        .finalize_xof()
        .take(SIZE)
}

#[test]
fn a_200_mib_blob_streams_in_and_out_in_bounded_memory() {
    let moto = Moto::start();
    let cfg = ObjectStoreConfig {
        url: format!("s3://{}/big", moto::BUCKET),
        endpoint: Some(moto.endpoint()),
        region: None,
    };
    let store = ObjectBlobs::with_env("cloud", &cfg, &moto.env()).unwrap();
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(source()).unwrap();
    let hex = hasher.finalize().to_hex().to_string();
    let mut session = store.session().unwrap();

    let before = reset_peak();
    let started = Instant::now();
    let put = session.put(&hex, false, &mut source()).unwrap();
    let up = started.elapsed();
    let grew_up = status_bytes("VmHWM:").saturating_sub(before);
    assert_eq!(put, SIZE);

    let before = reset_peak();
    let started = Instant::now();
    let mut reader = session.open(&hex).unwrap();
    let mut back = blake3::Hasher::new();
    let mut buf = vec![0; 256 << 10];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        back.update(&buf[..n]);
        got += n as u64;
    }
    let down = started.elapsed();
    let grew_down = status_bytes("VmHWM:").saturating_sub(before);
    eprintln!(
        "200 MiB: up {up:?} (peak RSS +{} MiB), down {down:?} (peak RSS +{} MiB)",
        grew_up >> 20,
        grew_down >> 20
    );
    assert_eq!(got, SIZE);
    assert_eq!(back.finalize().to_hex().as_str(), hex);
    assert!(
        grew_up < MAX_GROWTH,
        "uploading grew the peak RSS by {} MiB",
        grew_up >> 20
    );
    assert!(
        grew_down < MAX_GROWTH,
        "downloading grew the peak RSS by {} MiB",
        grew_down >> 20
    );
}
