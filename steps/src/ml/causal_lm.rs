//! The interface every decoder-only architecture implements, so that loading, LoRA, NF4,
//! fine-tuning, merging and serving work on any of them. An architecture exposes its linear
//! layers under their Hugging Face module paths (`model.decoder.layers.0.fc1`); everything
//! else is done on those names.

use tch::{Device, Kind, Tensor};

use super::linear::Linear;
use super::mode::Mode;

/// What callers need to know about a loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// `model_type` of config.json (`opt`, `llama`, `mistral`).
    pub architecture: String,
    /// Rows of the token embedding (= logits width).
    pub vocab_size: i64,
    /// Longest sequence the position embedding covers.
    pub max_positions: i64,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<i64>,
    /// End-of-sequence token.
    pub eos_token_id: Option<i64>,
    /// Padding token.
    pub pad_token_id: Option<i64>,
    /// Precision of weights and activations.
    pub kind: Kind,
    /// Where the weights live.
    pub device: Device,
    /// Parameters of the base model as loaded (before quantization or adapters).
    pub base_params: i64,
}

/// A decoder-only language model.
pub trait CausalLm: Send {
    /// Shape and token facts.
    fn info(&self) -> &ModelInfo;

    /// Logits `[batch, seq, vocab]` (in the model's precision) for `input_ids` `[batch, seq]`.
    /// `attention_mask` (`[batch, seq]`, 1 = token, 0 = padding) defaults to all ones.
    /// `mode` turns dropout on.
    fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, mode: Mode) -> Tensor;

    /// Every linear layer that LoRA or NF4 may touch, by Hugging Face module path.
    fn linears(&self) -> Vec<(String, &Linear)>;

    /// Mutable access to the same layers, in the same order.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)>;

    /// Module names adapted when the user names none (the MLP projections).
    fn default_lora_targets(&self) -> &'static [&'static str];

    /// Every weight under its Hugging Face name, linear layers with their adapters merged, in
    /// the model's precision, so that `save_pretrained`-style folders can be written.
    fn state_dict(&self) -> Vec<(String, Tensor)>;
}
