//! LoRA: a trainable low-rank update `B·A·(alpha/r)` beside a frozen linear layer. The adapter
//! is kept in fp32 whatever the base precision; its input is cast up and its output back.

use tch::{Device, Kind, Tensor};

use super::mode::{Mode, hash_uniform};
pub use crate::settings::LoraConfig;

/// The trainable pair of one adapted layer.
pub struct LoraAdapter {
    /// `[r, in]`, Kaiming-uniform initialised.
    pub a: Tensor,
    /// `[out, r]`, zero-initialised so training starts from the base model.
    pub b: Tensor,
    /// `alpha / r`.
    pub scale: f64,
    /// Input dropout while training.
    pub dropout: f64,
    /// Tells this adapter's dropout masks apart from other layers'.
    pub stream: u64,
}

impl LoraAdapter {
    /// A fresh adapter for a layer `in_features → out_features`; `A` is drawn from a hash of
    /// `seed` (not libtorch's global generator), so the same seed gives the same adapter.
    pub fn new(
        in_features: i64,
        out_features: i64,
        cfg: &LoraConfig,
        seed: u64,
        stream: u64,
        device: Device,
    ) -> Self {
        let bound = 1.0 / (in_features as f64).sqrt();
        let a = (hash_uniform(
            &[cfg.r, in_features],
            super::mode::mix(seed, stream),
            device,
        ) * (2.0 * bound)
            - bound)
            .set_requires_grad(true);
        let b = Tensor::zeros([out_features, cfg.r], (Kind::Float, device)).set_requires_grad(true);
        LoraAdapter {
            a,
            b,
            scale: cfg.alpha / cfg.r as f64,
            dropout: cfg.dropout,
            stream,
        }
    }

    /// An adapter from saved matrices.
    pub fn from_weights(a: Tensor, b: Tensor, scale: f64, dropout: f64, stream: u64) -> Self {
        let a = a.to_kind(Kind::Float).detach().set_requires_grad(true);
        let b = b.to_kind(Kind::Float).detach().set_requires_grad(true);
        LoraAdapter {
            a,
            b,
            scale,
            dropout,
            stream,
        }
    }

    /// The update for input `x` (`[..., in]`), in `x`'s precision.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let xf = x.to_kind(Kind::Float);
        let xf = mode.dropout(&xf, self.dropout, self.stream);
        (xf.linear::<&Tensor>(&self.a, None)
            .linear::<&Tensor>(&self.b, None)
            * self.scale)
            .to_kind(x.kind())
    }

    /// `scale · B · A`, the dense update a merge adds to the base weight.
    pub fn delta(&self) -> Tensor {
        let _guard = tch::no_grad_guard();
        self.b.matmul(&self.a) * self.scale
    }

    /// Trainable parameter count.
    pub fn numel(&self) -> i64 {
        (self.a.numel() + self.b.numel()) as i64
    }
}
