//! The cache key of a step: a blake3 hash over a canonical serialization of [`KeyInputs`].
//!
//! What enters (WORKFLOW-FORMAT.md, "The cache key of a step"): the step kind and its version,
//! the command or `with` as written plus the values of the params it references, its env, the
//! content of every `inputs` file, the output digests of every upstream step it reads, its
//! declared outputs and gates, and the runner class. Never the run id, the time or the attempt.
//! A snapshot test pins the serialization; bump [`KEY_VERSION`] to invalidate every cache.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bump to invalidate all caches.
pub const KEY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub version: u32,
    /// `run`, or `uses:KIND@VERSION`.
    pub kind: String,
    /// The `run` command as written, or the `with` mapping as canonical JSON.
    pub definition: String,
    /// The params the step references, with the values of this run.
    pub params: BTreeMap<String, String>,
    /// The step's env, as written.
    pub env: BTreeMap<String, String>,
    /// Input path → content digest.
    pub inputs: BTreeMap<String, String>,
    /// `STEP/OUTPUT` → digest, for every upstream output the step depends on.
    pub upstream: BTreeMap<String, String>,
    pub outputs: Vec<String>,
    pub gate: Vec<String>,
    /// The runner class (`local`, `ssh`, …), or the runner's name with `cache.per-runner`.
    pub runner: String,
    /// The secrets the step gets: name → where the value comes from (`env:VAR`, `file:PATH`),
    /// never the value, so a rotated token does not rerun a step. Left out when empty, so the
    /// keys of steps without secrets are what they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

impl KeyInputs {
    /// The key: `k` + the version + `-` + blake3 of the canonical JSON.
    pub fn key(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("key inputs serialize");
        format!("k{}-{}", self.version, blake3::hash(&canonical).to_hex())
    }
}
