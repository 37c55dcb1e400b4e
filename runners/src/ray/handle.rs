//! What a Ray runner stores about a launched attempt ([`Handle::data`](crate::Handle)), and
//! the deterministic submission id of each attempt.

use serde::{Deserialize, Serialize};

/// A launched attempt on a Ray cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RayHandle {
    /// The Ray Job's submission id, the same for every launch of the attempt.
    pub submission_id: String,
    /// The attempt folder: in the shared folder, or on the node for a bucket.
    pub dir: String,
    /// For a bucket: `runs/RUN/STEP/ATTEMPT`, where the attempt's records are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// The step's wall-clock limit in seconds, counted from the job's submission.
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// How long the job may stay `PENDING` (waiting for resources), from its submission.
    #[serde(default)]
    pub wait_for_capacity_s: Option<f64>,
}

/// The submission id of `(run, step, attempt)`: readable (`tuna-RUN-STEP-ATTEMPT` with every
/// character Ray's ids should not hold replaced by `_`) and unique (a short blake3 of the three
/// values keeps `a.b` and `a_b` apart). Launching the same attempt again names the same job.
pub fn submission_id(run: &str, step: &str, attempt: u32) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .take(60)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let raw = format!("{run}\0{step}\0{attempt}");
    let hash = blake3::hash(raw.as_bytes()).to_hex();
    format!(
        "tuna-{}-{}-{attempt}-{}",
        clean(run),
        clean(step),
        &hash[..10]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_ids_are_stable_clean_and_distinct() {
        let a = submission_id("20260101-r", "train.v2", 1);
        assert_eq!(a, submission_id("20260101-r", "train.v2", 1));
        assert!(a.starts_with("tuna-20260101-r-train_v2-1-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, submission_id("20260101-r", "train_v2", 1));
        assert_ne!(a, submission_id("20260101-r", "train.v2", 2));
        let odd = submission_id("r", "x/../y $(z)", 1);
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{odd}"
        );
    }
}
