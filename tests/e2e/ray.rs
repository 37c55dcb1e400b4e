//! The Ray runner end to end: one real Ray head (tests/src/ray.rs) for the whole test process,
//! and the real `tuna` binary submitting, watching, cancelling and checking Ray Jobs there.

use tuna_tests::ray;

#[test]
fn ray_cluster_answers_on_loopback() {
    let c = ray::cluster();
    let (code, body) = c.get("/api/version");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(
        v["ray_version"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
}
