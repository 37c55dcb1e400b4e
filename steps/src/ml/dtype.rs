//! Compute precision and device as a user writes them (`fp32`/`bf16`, `cpu`/`cuda`/`auto`).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

/// Floating-point precision of the model's weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DType {
    /// 32-bit floats.
    #[default]
    #[serde(rename = "fp32", alias = "float32", alias = "f32")]
    F32,
    /// bfloat16.
    #[serde(rename = "bf16", alias = "bfloat16")]
    Bf16,
}

impl DType {
    /// The libtorch kind.
    pub fn kind(self) -> Kind {
        match self {
            DType::F32 => Kind::Float,
            DType::Bf16 => Kind::BFloat16,
        }
    }
}

/// Where tensors live.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceSpec(pub String);

impl DeviceSpec {
    /// `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    pub fn resolve(&self) -> Result<Device, String> {
        let s = self.0.trim();
        match s {
            "" | "auto" => Ok(Device::cuda_if_available()),
            "cpu" => Ok(Device::Cpu),
            "cuda" => cuda(0),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => cuda(n),
                _ => Err(format!(
                    "`{s}` is not a device (write cpu, cuda, cuda:N or auto)"
                )),
            },
        }
    }
}

fn cuda(n: usize) -> Result<Device, String> {
    if tch::Cuda::is_available() && n < tch::Cuda::device_count() as usize {
        Ok(Device::Cuda(n))
    } else {
        Err(format!(
            "cuda:{n} requested but libtorch sees {} CUDA device(s)",
            tch::Cuda::device_count()
        ))
    }
}
