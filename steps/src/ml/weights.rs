//! Reading a Hugging Face folder's weights: `model.safetensors`, or the shards named by
//! `model.safetensors.index.json`. Hands out tensors by name, converted to the compute
//! precision and device, with their shapes checked.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::error::{MlError, MlResult};

/// All tensors of a model folder, by name, still on the CPU in their stored precision.
pub(crate) struct WeightMap {
    dir: PathBuf,
    tensors: HashMap<String, Tensor>,
    kind: Kind,
    device: Device,
}

impl WeightMap {
    /// Reads every weight file of `dir`; floats are later converted to `kind` on `device`.
    pub(crate) fn load(dir: &Path, kind: Kind, device: Device) -> MlResult<Self> {
        let files = weight_files(dir)?;
        let mut tensors = HashMap::new();
        for file in files {
            let read = Tensor::read_safetensors(&file).map_err(|e| MlError::ModelFolder {
                dir: dir.to_path_buf(),
                message: format!("cannot read {}: {e}", file.display()),
            })?;
            tensors.extend(read);
        }
        Ok(WeightMap {
            dir: dir.to_path_buf(),
            tensors,
            kind,
            device,
        })
    }

    /// Removes and returns the first of `names` present, checked against `shape`.
    pub(crate) fn take(&mut self, names: &[String], shape: &[i64]) -> MlResult<Tensor> {
        self.take_opt(names, shape)?.ok_or_else(|| MlError::Weight {
            dir: self.dir.clone(),
            name: names[0].clone(),
            message: "missing from the safetensors file(s)".into(),
        })
    }

    /// Like [`take`](Self::take), but a missing weight is `None`.
    pub(crate) fn take_opt(&mut self, names: &[String], shape: &[i64]) -> MlResult<Option<Tensor>> {
        let Some((name, t)) = names
            .iter()
            .find_map(|n| self.tensors.remove(n).map(|t| (n, t)))
        else {
            return Ok(None);
        };
        if t.size() != shape {
            return Err(MlError::Weight {
                dir: self.dir.clone(),
                name: name.clone(),
                message: format!("shape {:?}, but config.json implies {shape:?}", t.size()),
            });
        }
        if !t.is_floating_point() {
            return Err(MlError::Weight {
                dir: self.dir.clone(),
                name: name.clone(),
                message: format!("stored as {:?}, expected a floating-point type", t.kind()),
            });
        }
        Ok(Some(t.to_device(self.device).to_kind(self.kind).detach()))
    }
}

/// The safetensors files of a folder: the single file, or the shards of the index.
fn weight_files(dir: &Path) -> MlResult<Vec<PathBuf>> {
    let folder_err = |message: String| MlError::ModelFolder {
        dir: dir.to_path_buf(),
        message,
    };
    if !dir.is_dir() {
        return Err(folder_err("not a directory".into()));
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index)
            .map_err(|e| MlError::io(format!("reading {}", index.display()), e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| folder_err(format!("model.safetensors.index.json is not JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                folder_err("model.safetensors.index.json has no `weight_map` object".into())
            })?;
        let mut shards = BTreeSet::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| folder_err(format!("index entry `{name}` is not a file name")))?;
            if file.contains('/') || file.contains("..") {
                return Err(folder_err(format!(
                    "index entry `{name}` points outside the folder: {file}"
                )));
            }
            shards.insert(file.to_string());
        }
        let mut files = Vec::new();
        for shard in shards {
            let path = dir.join(&shard);
            if !path.is_file() {
                return Err(folder_err(format!(
                    "shard {shard} named in model.safetensors.index.json is missing"
                )));
            }
            files.push(path);
        }
        return Ok(files);
    }
    let hint = if dir.join("pytorch_model.bin").exists() {
        " (pytorch_model.bin found: re-save the model with safetensors, e.g. save_pretrained(dir, safe_serialization=True))"
    } else {
        ""
    };
    Err(folder_err(format!(
        "no model.safetensors or model.safetensors.index.json{hint}"
    )))
}
