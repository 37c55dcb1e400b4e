//! Rotary position embeddings in transformers' convention: frequencies
//! `1 / theta^(2i/d)` computed in fp32, the angle table duplicated over both halves of the head
//! (`cat(freqs, freqs)`), and `rotate_half` pairing dimension `i` with `i + d/2`.

use tch::{Device, Kind, Tensor};

/// The inverse frequencies of one head width.
pub(crate) struct Rotary {
    inv_freq: Tensor,
}

impl Rotary {
    pub(crate) fn new(head_dim: i64, theta: f64, device: Device) -> Self {
        let exponents =
            Tensor::arange_start_step(0, head_dim, 2, (Kind::Float, device)) / head_dim as f64;
        let inv_freq = Tensor::pow_scalar(theta, &exponents).reciprocal();
        Rotary { inv_freq }
    }

    /// `(cos, sin)` `[seq, head_dim]` for positions `0..seq`, in `kind`.
    pub(crate) fn tables(&self, seq: i64, kind: Kind) -> (Tensor, Tensor) {
        let device = self.inv_freq.device();
        let positions = Tensor::arange(seq, (Kind::Float, device));
        let freqs = positions.unsqueeze(1) * self.inv_freq.unsqueeze(0);
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }

    /// Rotates `x` `[batch, heads, seq, head_dim]` by the tables of [`tables`](Self::tables).
    pub(crate) fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let half = x.size()[3] / 2;
        let x1 = x.narrow(-1, 0, half);
        let x2 = x.narrow(-1, half, half);
        let rotated = Tensor::cat(&[&x2.neg(), &x1], -1);
        x * cos + rotated * sin
    }
}
