//! One OPT decoder layer: attention and MLP blocks with residuals, LayerNorm before (pre-LN,
//! most sizes) or after (post-LN, OPT-350m) each block.

use tch::Tensor;

use super::attention::OptAttention;
use super::config::Activation;
use crate::ml::layer_norm::LayerNorm;
use crate::ml::linear::Linear;
use crate::ml::mode::Mode;

/// A decoder layer.
pub(crate) struct OptLayer {
    pub(crate) self_attn: OptAttention,
    pub(crate) self_attn_layer_norm: LayerNorm,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
    pub(crate) final_layer_norm: LayerNorm,
    pub(crate) pre_ln: bool,
    pub(crate) activation: Activation,
    pub(crate) dropout: f64,
    /// Dropout stream base of this layer.
    pub(crate) stream: u64,
}

impl OptLayer {
    pub(crate) fn forward(&self, x: &Tensor, mask: Option<&Tensor>, mode: Mode) -> Tensor {
        let residual = x;
        let h = if self.pre_ln {
            self.self_attn_layer_norm.forward(x)
        } else {
            x.shallow_clone()
        };
        let h = self.self_attn.forward(&h, mask, mode);
        let h = mode.dropout(&h, self.dropout, self.stream);
        let h = residual + h;
        let h = if self.pre_ln {
            h
        } else {
            self.self_attn_layer_norm.forward(&h)
        };

        let residual = &h;
        let m = if self.pre_ln {
            self.final_layer_norm.forward(&h)
        } else {
            h.shallow_clone()
        };
        let m = self.fc1.forward(&m, mode);
        let m = match self.activation {
            Activation::Relu => m.relu(),
            Activation::Gelu => m.gelu("none"),
            Activation::GeluTanh => m.gelu("tanh"),
        };
        let m = mode.dropout(&self.fc2.forward(&m, mode), self.dropout, self.stream + 1);
        let out = residual + m;
        if self.pre_ln {
            out
        } else {
            self.final_layer_norm.forward(&out)
        }
    }
}
