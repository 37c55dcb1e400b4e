//! RMSNorm as transformers' Llama computes it: the root mean square taken in fp32, the
//! normalised activations cast back to the model's precision, then scaled by the weight.

use tch::{Kind, Tensor};

/// `w · (x / sqrt(mean(x²) + eps))` over the last dimension.
pub(crate) struct RmsNorm {
    pub(crate) weight: Tensor,
    pub(crate) eps: f64,
}

impl RmsNorm {
    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let var = xf.square().mean_dim(-1, true, Kind::Float);
        let normed = (xf * (var + self.eps).rsqrt()).to_kind(kind);
        &self.weight * normed
    }
}
