//! LayerNorm with optional affine parameters.

use tch::Tensor;

/// `(x - mean) / sqrt(var + eps) · w + b` over the last dimension.
pub(crate) struct LayerNorm {
    pub(crate) weight: Option<Tensor>,
    pub(crate) bias: Option<Tensor>,
    pub(crate) width: i64,
    pub(crate) eps: f64,
}

impl LayerNorm {
    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.width],
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
            true,
        )
    }
}
