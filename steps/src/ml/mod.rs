//! The native ML core (feature `torch`): Hugging Face model folders loaded into libtorch via
//! `tch`, LoRA and NF4 (QLoRA) on named linear layers, and the fine-tuning loop.

mod adapt;
mod causal_lm;
mod config_json;
mod dtype;
mod error;
pub mod finetune;
mod layer_norm;
mod linear;
pub mod llama;
mod loader;
mod lora;
mod mask;
mod mode;
mod nf4;
pub mod opt;
mod peft;
pub mod serve;
mod tokenizer;
mod weights;

pub use adapt::{
    PEFT_PREFIX, apply_lora, is_target, lora_parameters, lora_targets, parameter_counts,
    quantize_nf4,
};
pub use causal_lm::{CausalLm, ModelInfo};
pub use dtype::{DType, DeviceSpec};
pub use error::{MlError, MlResult};
pub use linear::Linear;
pub use loader::{ARCHITECTURES, load_causal_lm};
pub use lora::{LoraAdapter, LoraConfig};
pub use mode::Mode;
pub use nf4::{NF4_BLOCK, NF4_LEVELS, Nf4Tensor, SCALE_BLOCK, nf4_max_relative_error};
pub use peft::{load_adapter, save_adapter, save_merged};
pub use tokenizer::TextTokenizer;
