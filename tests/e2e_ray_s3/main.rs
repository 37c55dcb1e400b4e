//! The Ray runner with its artifacts in object storage, end to end: one real moto server
//! (tests/src/moto.rs) and one real Ray head (tests/src/ray.rs) for the whole test process,
//! the head started after moto with moto's key in its environment (as a node's own machine
//! would hold credentials), and the real `tuna` binary with the same key in its own.

mod bench;
mod bucket;
// The daemon tests' harness: only `Serve::start` and `Serve::tuna` are used here.
#[path = "../e2e/daemon_harness.rs"]
#[allow(dead_code)]
mod daemon_harness;
mod misbehave;

use std::path::Path;

use tuna_runners::objstore::{ObjectBlobs, ObjectStoreConfig};
use tuna_tests::moto::{self, Moto};
use tuna_tests::ray::{self, RayCluster};
use tuna_tests::{Project, Run};

/// The shared moto server.
pub(crate) fn moto() -> &'static Moto {
    moto::shared()
}

/// The shared Ray head: its jobs read the bucket with moto's key from their environment.
pub(crate) fn cluster() -> &'static RayCluster {
    let m = moto();
    ray::cluster_with_env(|| m.env_vars())
}

/// One test's place in the bucket: its own prefix, and a folder for the node's attempts.
pub(crate) struct Place {
    pub url: String,
    pub node_dir: tempfile::TempDir,
}

impl Place {
    pub fn new(test: &str) -> Place {
        Place {
            url: format!("s3://{}/{test}-{:08x}", moto::BUCKET, rand::random::<u32>()),
            node_dir: tempfile::Builder::new()
                .prefix("tuna-ray-node-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// The bucket as the test sees it, with moto's key.
    pub fn store(&self) -> ObjectBlobs {
        let cfg = ObjectStoreConfig {
            url: self.url.clone(),
            endpoint: Some(moto().endpoint()),
            region: Some(moto::REGION.into()),
        };
        ObjectBlobs::with_env("test", &cfg, &moto().env()).expect("store")
    }
}

/// runners.yaml: `local` and `ray` on the test cluster with its artifacts at `url`, plus `extra`
/// lines for `ray`.
pub(crate) fn inventory(p: &Project, place: &Place, url: &str, extra: &str) {
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n  local: {{ type: local, slots: 2 }}\n  ray:\n    type: ray\n    \
             address: {addr}\n    token_env: TUNA_TEST_RAY_TOKEN\n    max_parallel: 2\n    \
             workdir: {node}\n    artifacts: {{ url: \"{url}\", endpoint: \"{endpoint}\", \
             region: {region} }}\n{extra}",
            addr = cluster().address(),
            node = place.node_dir.path().display(),
            endpoint = moto().endpoint(),
            region = moto::REGION,
        ),
    );
}

/// A project with the usual runners.yaml and `workflow` as wf.yaml.
pub(crate) fn project(test: &str, workflow: &str, extra: &str) -> (Place, Project) {
    let place = Place::new(test);
    let p = Project::new();
    inventory(&p, &place, &place.url, extra);
    p.file("wf.yaml", workflow);
    (place, p)
}

/// `tuna --runners runners.yaml ARGS…` with the token and moto's key in its environment.
pub(crate) fn command(p: &Project, args: &[&str]) -> std::process::Command {
    let mut c = p.tuna();
    c.args(["--runners", "runners.yaml"])
        .args(args)
        .env("TUNA_TEST_RAY_TOKEN", &cluster().token)
        .envs(moto().env_vars())
        .env("TUNA_RAY_POLL_MS", "200");
    c
}

pub(crate) fn tuna(p: &Project, args: &[&str]) -> Run {
    Run::from(command(p, args).output().expect("run tuna"))
}

pub(crate) fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Whether the local artifact store holds the blob `hex`.
pub(crate) fn in_local_store(p: &Project, hex: &str) -> bool {
    let dir = p.home().join("cas/objects").join(&hex[..2]);
    dir.join(&hex[2..]).exists() || dir.join(format!("{}.x", &hex[2..])).exists()
}

/// Whether `dir` holds nothing (or is gone).
pub(crate) fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}
