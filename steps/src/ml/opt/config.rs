//! OPT's `config.json` fields, checked: a model that would compute something different from
//! transformers' OPT is refused with the key that causes it.

use crate::ml::config_json::ConfigJson;
use crate::ml::error::{MlError, MlResult};

/// Activation of the MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    Relu,
    Gelu,
    GeluTanh,
}

/// The hyper-parameters of an OPT model.
#[derive(Debug, Clone)]
pub(crate) struct OptConfig {
    pub(crate) vocab_size: i64,
    pub(crate) hidden_size: i64,
    pub(crate) num_layers: i64,
    pub(crate) ffn_dim: i64,
    pub(crate) num_heads: i64,
    pub(crate) max_positions: i64,
    pub(crate) word_embed_proj_dim: i64,
    pub(crate) do_layer_norm_before: bool,
    pub(crate) final_layer_norm: bool,
    pub(crate) layer_norm_affine: bool,
    pub(crate) enable_bias: bool,
    pub(crate) dropout: f64,
    pub(crate) attention_dropout: f64,
    pub(crate) activation: Activation,
    pub(crate) tie_word_embeddings: bool,
    pub(crate) bos_token_id: Option<i64>,
    pub(crate) eos_token_id: Option<i64>,
    pub(crate) pad_token_id: Option<i64>,
}

impl OptConfig {
    pub(crate) fn from_json(c: &ConfigJson) -> MlResult<Self> {
        let hidden_size = c.usize("hidden_size")?;
        let num_heads = c.usize("num_attention_heads")?;
        if hidden_size % num_heads != 0 {
            return Err(MlError::Config {
                path: c.path().to_path_buf(),
                message: format!(
                    "`hidden_size` {hidden_size} is not a multiple of `num_attention_heads` {num_heads}"
                ),
            });
        }
        let activation = match c.str_opt("activation_function")?.unwrap_or("relu") {
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => {
                return Err(MlError::Config {
                    path: c.path().to_path_buf(),
                    message: format!(
                        "`activation_function` `{other}` is not supported (relu, gelu, gelu_new)"
                    ),
                });
            }
        };
        let do_layer_norm_before = c.bool_or("do_layer_norm_before", true)?;
        Ok(OptConfig {
            vocab_size: c.usize("vocab_size")?,
            hidden_size,
            num_layers: c.usize("num_hidden_layers")?,
            ffn_dim: c.usize("ffn_dim")?,
            num_heads,
            max_positions: c.usize("max_position_embeddings")?,
            word_embed_proj_dim: c.usize_opt("word_embed_proj_dim")?.unwrap_or(hidden_size),
            do_layer_norm_before,
            final_layer_norm: do_layer_norm_before
                && !c.bool_or("_remove_final_layer_norm", false)?,
            layer_norm_affine: c.bool_or("layer_norm_elementwise_affine", true)?,
            enable_bias: c.bool_or("enable_bias", true)?,
            dropout: c.prob_or("dropout", 0.1)?,
            attention_dropout: c.prob_or("attention_dropout", 0.0)?,
            activation,
            tie_word_embeddings: c.bool_or("tie_word_embeddings", true)?,
            bos_token_id: c.token_id("bos_token_id")?,
            eos_token_id: c.token_id("eos_token_id")?,
            pad_token_id: c.token_id("pad_token_id")?,
        })
    }

    pub(crate) fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_heads
    }
}
