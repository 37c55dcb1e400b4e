//! Grouped-query self-attention of the Llama family: q/k/v/o projections (biases only where
//! `attention_bias` says), rotary embeddings on queries and keys, each key/value head shared by
//! `num_heads / num_kv_heads` query heads.

use tch::Tensor;

use super::rotary::Rotary;
use crate::ml::linear::Linear;
use crate::ml::mode::Mode;

/// One attention block.
pub(crate) struct LlamaAttention {
    pub(crate) q_proj: Linear,
    pub(crate) k_proj: Linear,
    pub(crate) v_proj: Linear,
    pub(crate) o_proj: Linear,
    pub(crate) num_heads: i64,
    pub(crate) num_kv_heads: i64,
    pub(crate) head_dim: i64,
    pub(crate) dropout: f64,
}

impl LlamaAttention {
    /// `x` `[b, t, hidden]`; `rope` the `(cos, sin)` tables of `t` positions; `mask`
    /// `[b|1, 1, t, t]` booleans (true = may attend), or `None` for a plain causal mask.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: Option<&Tensor>,
        mode: Mode,
    ) -> Tensor {
        let (b, t, _) = x.size3().expect("attention input is [batch, seq, hidden]");
        let split = |y: Tensor, heads: i64| y.view([b, t, heads, self.head_dim]).transpose(1, 2);
        let q = split(self.q_proj.forward(x, mode), self.num_heads);
        let k = split(self.k_proj.forward(x, mode), self.num_kv_heads);
        let v = split(self.v_proj.forward(x, mode), self.num_kv_heads);
        let (cos, sin) = rope;
        let q = Rotary::apply(&q, cos, sin);
        let k = self.repeat_kv(&Rotary::apply(&k, cos, sin));
        let v = self.repeat_kv(&v);
        let p = if mode.is_train() { self.dropout } else { 0.0 };
        let scale = (self.head_dim as f64).powf(-0.5);
        let y =
            Tensor::scaled_dot_product_attention(&q, &k, &v, mask, p, mask.is_none(), scale, false);
        let y = y
            .transpose(1, 2)
            .contiguous()
            .view([b, t, self.num_heads * self.head_dim]);
        self.o_proj.forward(&y, mode)
    }

    /// `[b, kv_heads, t, d]` → `[b, heads, t, d]`, each key/value head repeated for its group.
    fn repeat_kv(&self, x: &Tensor) -> Tensor {
        let groups = self.num_heads / self.num_kv_heads;
        if groups == 1 {
            return x.shallow_clone();
        }
        let (b, _, t, d) = x.size4().expect("[batch, kv_heads, seq, head_dim]");
        x.unsqueeze(2)
            .expand([b, self.num_kv_heads, groups, t, d], false)
            .reshape([b, self.num_heads, t, d])
    }
}
