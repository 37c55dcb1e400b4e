//! OPT's multi-head self-attention (q/k/v/out projections with biases, scaled dot product).

use tch::Tensor;

use crate::ml::linear::Linear;
use crate::ml::mode::Mode;

/// One attention block.
pub(crate) struct OptAttention {
    pub(crate) q_proj: Linear,
    pub(crate) k_proj: Linear,
    pub(crate) v_proj: Linear,
    pub(crate) out_proj: Linear,
    pub(crate) num_heads: i64,
    pub(crate) head_dim: i64,
    pub(crate) dropout: f64,
}

impl OptAttention {
    /// `x` `[b, t, h]`; `mask` `[b, 1, t, t]` booleans (true = may attend), or `None` for a
    /// plain causal mask.
    pub(crate) fn forward(&self, x: &Tensor, mask: Option<&Tensor>, mode: Mode) -> Tensor {
        let (b, t, h) = x.size3().expect("attention input is [batch, seq, hidden]");
        let split = |y: Tensor| {
            y.view([b, t, self.num_heads, self.head_dim])
                .transpose(1, 2)
        };
        let q = split(self.q_proj.forward(x, mode));
        let k = split(self.k_proj.forward(x, mode));
        let v = split(self.v_proj.forward(x, mode));
        // Attention-probability dropout (0 in every released OPT) uses libtorch's generator.
        let p = if mode.is_train() { self.dropout } else { 0.0 };
        let scale = (self.head_dim as f64).powf(-0.5);
        let y =
            Tensor::scaled_dot_product_attention(&q, &k, &v, mask, p, mask.is_none(), scale, false);
        let y = y.transpose(1, 2).contiguous().view([b, t, h]);
        self.out_proj.forward(&y, mode)
    }
}
