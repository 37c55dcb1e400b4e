//! Opening a Hugging Face model folder: reads `config.json`, picks the architecture by
//! `model_type`, and loads its weights. New architectures are added to `ARCHITECTURES`.

use std::path::Path;

use tch::Device;

use super::causal_lm::CausalLm;
use super::config_json::ConfigJson;
use super::dtype::DType;
use super::error::{MlError, MlResult};
use super::llama::LlamaModel;
use super::opt::OptModel;

/// Architectures this build can load (`model_type` values).
pub const ARCHITECTURES: &[&str] = &["opt", "llama", "mistral"];

/// Loads the model in `dir` in `dtype` on `device`.
pub fn load_causal_lm(dir: &Path, dtype: DType, device: Device) -> MlResult<Box<dyn CausalLm>> {
    let json = ConfigJson::read(dir)?;
    let model_type = json.model_type()?;
    match model_type.as_str() {
        "opt" => Ok(Box::new(OptModel::load(dir, &json, dtype.kind(), device)?)),
        t @ ("llama" | "mistral") => Ok(Box::new(LlamaModel::load(
            dir,
            &json,
            t,
            dtype.kind(),
            device,
        )?)),
        other => Err(MlError::UnsupportedArchitecture {
            path: json.path().to_path_buf(),
            found: other.to_string(),
            supported: ARCHITECTURES.join(", "),
        }),
    }
}
