//! Checkpoints of a run under `out_dir/checkpoints/step-NNNNNNNN/`: adapter tensors, AdamW
//! moments and the step's bookkeeping. A checkpoint is written to a temporary folder and
//! renamed into place, so a run killed mid-write leaves the previous one intact.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::adamw::AdamW;
use crate::ml::error::{MlError, MlResult};

/// Bookkeeping saved beside the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    /// Optimizer steps completed.
    pub(crate) step: u64,
    /// Loss of every completed step.
    pub(crate) losses: Vec<f64>,
    /// Eval losses computed so far (absent in checkpoints of runs without eval data).
    #[serde(default)]
    pub(crate) eval_losses: Vec<f64>,
    /// The step after which each eval loss was computed.
    #[serde(default)]
    pub(crate) eval_steps: Vec<u64>,
    /// Fingerprint of settings and data; a mismatch refuses the resume.
    pub(crate) fingerprint: String,
}

pub(crate) fn checkpoints_dir(out_dir: &Path) -> PathBuf {
    out_dir.join("checkpoints")
}

/// Saves after `state.step` steps and prunes all but the newest `keep`.
pub(crate) fn save(
    out_dir: &Path,
    names: &[String],
    opt: &AdamW,
    state: &CheckpointState,
    keep: usize,
) -> MlResult<PathBuf> {
    let root = checkpoints_dir(out_dir);
    let dir = root.join(format!("step-{:08}", state.step));
    let tmp = root.join(format!(".step-{:08}.partial", state.step));
    let cp_err = |e: std::io::Error| MlError::Checkpoint {
        path: dir.clone(),
        message: e.to_string(),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(cp_err)?;
    let cpu = |t: &Tensor| t.detach().to_device(tch::Device::Cpu).contiguous();
    let params: Vec<(String, Tensor)> = names
        .iter()
        .zip(&opt.params)
        .map(|(n, t)| (n.clone(), cpu(t)))
        .collect();
    let mut moments: Vec<(String, Tensor)> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        moments.push((format!("{n}.exp_avg"), cpu(&opt.m[i])));
        moments.push((format!("{n}.exp_avg_sq"), cpu(&opt.v[i])));
    }
    moments.push(("t".into(), Tensor::from_slice(&[opt.t as i64])));
    Tensor::write_safetensors(&params, tmp.join("adapter.safetensors"))?;
    Tensor::write_safetensors(&moments, tmp.join("optimizer.safetensors"))?;
    std::fs::write(
        tmp.join("state.json"),
        serde_json::to_string_pretty(state).expect("json"),
    )
    .map_err(cp_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(cp_err)?;
    prune(&root, keep);
    Ok(dir)
}

fn list(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join("state.json")
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    v.sort();
    v
}

fn prune(root: &Path, keep: usize) {
    let all = list(root);
    for (_, path) in all.iter().take(all.len().saturating_sub(keep)) {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// The newest complete checkpoint, if any.
pub(crate) fn latest(out_dir: &Path) -> Option<PathBuf> {
    list(&checkpoints_dir(out_dir)).pop().map(|(_, p)| p)
}

/// Restores parameters and optimizer state from `dir` into `opt`; returns its bookkeeping.
pub(crate) fn restore(
    dir: &Path,
    names: &[String],
    opt: &mut AdamW,
    fingerprint: &str,
) -> MlResult<CheckpointState> {
    let err = |message: String| MlError::Checkpoint {
        path: dir.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(dir.join("state.json")).map_err(|e| err(e.to_string()))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| err(format!("state.json: {e}")))?;
    if state.fingerprint != fingerprint {
        return Err(err(
            "was written by a run with other settings or data; delete the checkpoints folder to start over".into(),
        ));
    }
    let read = |f: &str| -> MlResult<std::collections::HashMap<String, Tensor>> {
        Ok(Tensor::read_safetensors(dir.join(f))
            .map_err(|e| err(format!("{f}: {e}")))?
            .into_iter()
            .collect())
    };
    let params = read("adapter.safetensors")?;
    let mut moments = read("optimizer.safetensors")?;
    let _guard = tch::no_grad_guard();
    for (i, n) in names.iter().enumerate() {
        let get = |m: &std::collections::HashMap<String, Tensor>, k: &str| {
            m.get(k)
                .map(Tensor::shallow_clone)
                .ok_or_else(|| err(format!("lacks `{k}`")))
        };
        opt.params[i].f_copy_(&get(&params, n)?)?;
        opt.m[i].f_copy_(&get(&moments, &format!("{n}.exp_avg"))?)?;
        opt.v[i].f_copy_(&get(&moments, &format!("{n}.exp_avg_sq"))?)?;
    }
    let t = moments.remove("t").ok_or_else(|| err("lacks `t`".into()))?;
    opt.t = t.int64_value(&[0]) as u64;
    Ok(state)
}
