//! One Llama decoder layer: RMSNorm → attention → residual, RMSNorm → SwiGLU MLP
//! (`down(silu(gate(x)) · up(x))`) → residual.

use tch::Tensor;

use super::attention::LlamaAttention;
use super::rms_norm::RmsNorm;
use crate::ml::linear::Linear;
use crate::ml::mode::Mode;

/// A decoder layer.
pub(crate) struct LlamaLayer {
    pub(crate) input_layernorm: RmsNorm,
    pub(crate) self_attn: LlamaAttention,
    pub(crate) post_attention_layernorm: RmsNorm,
    pub(crate) gate_proj: Linear,
    pub(crate) up_proj: Linear,
    pub(crate) down_proj: Linear,
}

impl LlamaLayer {
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: Option<&Tensor>,
        mode: Mode,
    ) -> Tensor {
        let h = self.input_layernorm.forward(x);
        let h = x + self.self_attn.forward(&h, rope, mask, mode);
        let m = self.post_attention_layernorm.forward(&h);
        let m = self.gate_proj.forward(&m, mode).silu() * self.up_proj.forward(&m, mode);
        &h + self.down_proj.forward(&m, mode)
    }
}
