//! A linear layer of a causal LM: a frozen base weight (dense or NF4), an optional bias, and an
//! optional LoRA adapter. Every architecture builds its projections from this type so that
//! quantization and adapters apply by module name, whatever the model.

use tch::{Device, Kind, Tensor};

use super::lora::{LoraAdapter, LoraConfig};
use super::mode::Mode;
use super::nf4::Nf4Tensor;

enum Base {
    Dense(Tensor),
    Nf4(Nf4Tensor),
}

/// `y = x·Wᵀ + b (+ LoRA)`.
pub struct Linear {
    base: Base,
    bias: Option<Tensor>,
    lora: Option<LoraAdapter>,
    in_features: i64,
    out_features: i64,
    device: Device,
}

impl Linear {
    /// A dense frozen layer from a `[out, in]` weight.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        let size = weight.size();
        let device = weight.device();
        Linear {
            base: Base::Dense(weight),
            bias,
            lora: None,
            in_features: size[1],
            out_features: size[0],
            device,
        }
    }

    /// Input width.
    pub fn in_features(&self) -> i64 {
        self.in_features
    }

    /// Output width.
    pub fn out_features(&self) -> i64 {
        self.out_features
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let y = match &self.base {
            Base::Dense(w) => x.linear(w, self.bias.as_ref()),
            Base::Nf4(q) => x.linear(&q.dequantize(x.kind()), self.bias.as_ref()),
        };
        match &self.lora {
            Some(l) => y + l.forward(x, mode),
            None => y,
        }
    }

    /// Replaces the dense base weight by NF4 storage (no-op when already quantized).
    pub fn quantize_nf4(&mut self, double_quant: bool) {
        if let Base::Dense(w) = &self.base {
            self.base = Base::Nf4(Nf4Tensor::quantize(w, double_quant));
        }
    }

    /// Whether the base weight is stored as NF4.
    pub fn is_quantized(&self) -> bool {
        matches!(self.base, Base::Nf4(_))
    }

    /// Bytes held by the base weight.
    pub fn base_bytes(&self) -> u64 {
        match &self.base {
            Base::Dense(w) => (w.numel() * w.kind().elt_size_in_bytes()) as u64,
            Base::Nf4(q) => q.bytes(),
        }
    }

    /// Adds a fresh adapter initialised from `seed`; `stream` identifies the layer.
    pub fn attach_lora(&mut self, cfg: &LoraConfig, seed: u64, stream: u64) {
        self.lora = Some(LoraAdapter::new(
            self.in_features,
            self.out_features,
            cfg,
            seed,
            stream,
            self.device,
        ));
    }

    /// Installs a given adapter.
    pub fn set_lora(&mut self, adapter: LoraAdapter) {
        self.lora = Some(adapter);
    }

    /// The adapter, if any.
    pub fn lora(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// The dense weight with the adapter's update folded in, in `kind`.
    pub fn merged_weight(&self, kind: Kind) -> Tensor {
        let _guard = tch::no_grad_guard();
        let w = match &self.base {
            Base::Dense(w) => w.to_kind(Kind::Float),
            Base::Nf4(q) => q.dequantize(Kind::Float),
        };
        let w = match &self.lora {
            Some(l) => w + l.delta(),
            None => w,
        };
        w.to_kind(kind)
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}
