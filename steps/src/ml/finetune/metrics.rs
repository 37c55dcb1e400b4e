//! What a run reports (`metrics.json`) and the probes it needs: peak memory of this process
//! (resident set on CPU; device memory held by this process on CUDA, read from `nvidia-smi`,
//! which includes libtorch's cache and so bounds the peak from above), the GPU's name, and
//! the smoke-test projection to the full data set.

use std::collections::BTreeMap;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The outcome of a fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Loss of the first optimizer step (mean over completion tokens).
    pub loss_first: f64,
    /// Loss of the last step.
    pub loss_last: f64,
    /// Loss of every step, the first at index 0 (including steps done before a resume).
    pub losses: Vec<f64>,
    /// Loss on the eval data (`eval_data`) at each evaluation, in order (including evaluations
    /// done before a resume); empty without eval data.
    #[serde(default)]
    pub eval_losses: Vec<f64>,
    /// The optimizer step (1-based) after which each of `eval_losses` was computed.
    #[serde(default)]
    pub eval_steps: Vec<u64>,
    /// Loss on the eval data after the last step (absent without eval data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// Optimizer steps completed.
    pub steps: u64,
    /// Steps of the whole schedule (all epochs, or `max_steps`).
    pub total_steps: u64,
    /// The step this process resumed at (0 when it started fresh).
    pub resumed_from_step: u64,
    /// Training throughput of this process: real (non-padding) tokens per second.
    pub tokens_per_s: f64,
    /// Tokens this process trained on.
    pub tokens_trained: u64,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Seconds of each step this process ran.
    pub step_seconds: Vec<f64>,
    /// Tokens of each step this process ran (beside `step_seconds`).
    #[serde(default)]
    pub step_tokens: Vec<u64>,
    /// Peak memory in bytes (see `memory_kind`).
    pub peak_memory_bytes: u64,
    /// `cpu_rss` or `cuda_process`.
    pub memory_kind: String,
    /// Bytes held by the frozen linear weights (NF4 when quantized).
    pub base_linear_bytes: u64,
    /// Adapter parameters.
    pub trainable_params: i64,
    /// All parameters (base + adapter).
    pub total_params: i64,
    /// `trainable_params / total_params`.
    pub trainable_share: f64,
    /// Kept examples.
    pub examples: usize,
    /// Examples skipped because the prompt alone filled `max_seq_len`.
    pub skipped_examples: usize,
    /// Tokens in one pass over the data.
    pub dataset_tokens: u64,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// This machine's key in `gpu_speeds` (when known).
    pub gpu: Option<String>,
    /// Hours the full schedule (data × epochs) would take at the measured speed.
    pub projected_hours: f64,
    /// `projected_hours_<gpu>` for every entry of `gpu_speeds`, when this machine's entry is known.
    #[serde(flatten)]
    pub projected_by_gpu: BTreeMap<String, f64>,
}

/// Peak resident set size of this process (`VmHWM`).
pub(crate) fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Device memory held by this process, per `nvidia-smi`.
pub(crate) fn cuda_process_bytes() -> Option<u64> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(','))
        .filter(|(pid, _)| pid.trim() == me)
        .map(|(_, mib)| mib.trim().parse::<u64>().ok().map(|m| m * 1024 * 1024))
        .sum()
}

/// The `gpu_speeds` key of CUDA device `index`, guessed from its name (`NVIDIA A100-SXM4-80GB`
/// → `a100`), or `None`.
pub(crate) fn guess_gpu_key(index: usize, keys: &[&String]) -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(index)?
        .to_ascii_lowercase();
    keys.iter()
        .find(|k| name.contains(&k.to_ascii_lowercase()))
        .map(|k| k.to_string())
}

/// Seconds `full_tokens` would take, from the steps this process ran. The first step carries
/// one-time costs (kernel selection, the allocator's growth, CUDA's warm-up) that the full run
/// pays once too, so it counts once and the other tokens go at the later steps' speed; with one
/// step, at its speed.
pub(crate) fn projected_seconds(
    step_seconds: &[f64],
    step_tokens: &[u64],
    full_tokens: f64,
) -> f64 {
    let (Some(&first_s), Some(&first_t)) = (step_seconds.first(), step_tokens.first()) else {
        return 0.0;
    };
    let rest_s: f64 = step_seconds[1..].iter().sum();
    let rest_t: u64 = step_tokens[1..].iter().sum();
    if rest_s > 0.0 && rest_t > 0 {
        first_s + (full_tokens - first_t as f64).max(0.0) * rest_s / rest_t as f64
    } else if first_t > 0 {
        full_tokens * first_s / first_t as f64
    } else {
        0.0
    }
}

/// `projected_hours_<gpu>` entries: this machine's hours scaled by relative speed.
pub(crate) fn project(
    hours_here: f64,
    here: Option<&str>,
    speeds: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    let Some(mine) = here.and_then(|h| speeds.get(h)) else {
        return BTreeMap::new();
    };
    speeds
        .iter()
        .map(|(k, v)| (format!("projected_hours_{k}"), hours_here * mine / v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_scales_by_relative_speed() {
        let speeds: BTreeMap<String, f64> =
            [("t4".to_string(), 1.0), ("a100".to_string(), 8.0)].into();
        let p = project(40.0, Some("t4"), &speeds);
        assert_eq!(p["projected_hours_t4"], 40.0);
        assert_eq!(p["projected_hours_a100"], 5.0);
        assert!(project(40.0, Some("h100"), &speeds).is_empty());
        assert!(project(40.0, None, &speeds).is_empty());
    }

    #[test]
    fn projection_counts_the_first_step_once() {
        // A 3 s warm-up, then 0.1 s per 100 tokens: 1000 tokens take 3 + 900 × 0.001 s.
        let p = projected_seconds(&[3.0, 0.1, 0.1, 0.1], &[100; 4], 1000.0);
        assert!((p - 3.9).abs() < 1e-9, "{p}");
        // One step: its own speed.
        assert!((projected_seconds(&[2.0], &[100], 1000.0) - 20.0).abs() < 1e-9);
        assert_eq!(projected_seconds(&[], &[], 1000.0), 0.0);
    }

    #[test]
    fn rss_is_readable() {
        assert!(peak_rss_bytes() > 0);
    }
}
