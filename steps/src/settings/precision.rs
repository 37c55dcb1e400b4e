//! Compute precision and device as a user writes them (`fp32`/`bf16`, `cpu`/`cuda`/`auto`);
//! libtorch meanings are added by the ML core.

use serde::{Deserialize, Serialize};

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

/// Where tensors live.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceSpec(pub String);
