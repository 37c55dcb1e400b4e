//! How a Ray runner is set up: the cluster's dashboard address, the token it wants, what it
//! offers (slots, GPUs and the Ray resource each GPU type is asked for by), the `tuna`
//! program on its nodes and where artifacts travel: a folder every node mounts, or object
//! storage both this machine and the nodes reach.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::Gpu;
use crate::objstore::ObjectStoreConfig;

/// Where a Ray runner's artifacts travel.
#[derive(Debug, Clone, PartialEq)]
pub enum RayArtifacts {
    /// A folder every node and this machine mount at the same path: the content-addressed
    /// blobs (`cas/`) and the attempt folders (`runs/RUN/STEP/ATTEMPT`).
    Shared(PathBuf),
    /// Object storage (`s3://bucket/prefix`): blobs at `PREFIX/cas/<blake3>`, each attempt's
    /// spec and records at `PREFIX/runs/RUN/STEP/ATTEMPT/`; the node works in a folder of its
    /// own under `node_dir` it removes at the end. Credentials come from the environment, on
    /// this machine and on the nodes alike: never from the job.
    Bucket {
        store: ObjectStoreConfig,
        /// The folder on each node under which attempts work (`node_dir/RUN/STEP/ATTEMPT`).
        node_dir: String,
        /// Outputs bigger than this stay in the bucket, recorded by location.
        keep_remote_over: Option<u64>,
    },
}

/// Where attempts work on the nodes of a runner whose artifacts are in a bucket.
pub const DEFAULT_NODE_DIR: &str = "/tmp/tuna-ray";

/// The settings of a [`RayRunner`](super::RayRunner).
#[derive(Clone)]
pub struct RayConfig {
    /// The runner's name, as workflows refer to it.
    pub name: String,
    /// The dashboard's base URL (`http://…` or `https://…`), where the Jobs REST API is.
    pub address: String,
    /// Sent as `Authorization: Bearer …`; never logged, never given to a job.
    pub token: Option<String>,
    /// The environment variable the token came from, for messages.
    pub token_env: Option<String>,
    /// Steps at once (`max_parallel`).
    pub slots: u32,
    pub gpus: Vec<Gpu>,
    /// GPU type (lower case) → the Ray resource that asks for it; a type not listed asks for
    /// `accelerator_type:<TYPE in upper case>`, the label Ray gives GPU nodes.
    pub gpu_resources: BTreeMap<String, String>,
    /// The `tuna` program on the nodes (it runs `tuna ray-exec` around each step).
    pub tuna: String,
    /// Where artifacts travel.
    pub artifacts: RayArtifacts,
    /// The longest pause between two looks at a running job.
    pub poll_max: Duration,
    /// How long the cluster may stop answering before a watched job counts as lost
    /// (`runner-lost`; `lost_after`).
    pub lost_after: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl RayConfig {
    /// A runner for the cluster at `address` with its artifacts under `shared`.
    pub fn new(name: &str, address: &str, shared: PathBuf) -> RayConfig {
        RayConfig {
            name: name.to_owned(),
            address: address.trim_end_matches('/').to_owned(),
            token: None,
            token_env: None,
            slots: 1,
            gpus: Vec::new(),
            gpu_resources: BTreeMap::new(),
            tuna: "tuna".to_owned(),
            artifacts: RayArtifacts::Shared(shared),
            poll_max: Duration::from_millis(500),
            lost_after: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// The Ray resource a GPU of type `kind` is asked for by.
    pub fn resource_for(&self, kind: &str) -> String {
        let kind = kind.to_lowercase();
        self.gpu_resources
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| format!("accelerator_type:{}", kind.to_uppercase()))
    }
}

impl fmt::Debug for RayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RayConfig")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("token_env", &self.token_env)
            .field("slots", &self.slots)
            .field("gpus", &self.gpus)
            .field("gpu_resources", &self.gpu_resources)
            .field("tuna", &self.tuna)
            .field("artifacts", &self.artifacts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_types_map_to_ray_accelerator_labels_unless_mapped() {
        let mut c = RayConfig::new("ray", "http://h:8265/", PathBuf::from("/s"));
        assert_eq!(c.address, "http://h:8265");
        assert_eq!(c.resource_for("a100"), "accelerator_type:A100");
        c.gpu_resources.insert("h100".into(), "H100_80G".into());
        assert_eq!(c.resource_for("H100"), "H100_80G");
        c.token = Some("s3cret".into());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
