//! Settings of the built-in kinds as users write them in `with:`, parsed and range-checked
//! without libtorch, so that `tuna validate` checks them in every build.

mod error;
mod finetune;
mod lora;
mod precision;
mod serve_args;

pub use error::SettingError;
pub use finetune::{FinetuneConfig, Quantize};
pub use lora::LoraConfig;
pub use precision::{DType, DeviceSpec};
pub use serve_args::ServeModelArgs;
