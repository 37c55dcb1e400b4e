//! LoRA / QLoRA fine-tuning of a causal LM on prompt/completion JSONL.

mod adamw;
mod batches;
mod checkpoint;
mod data;
mod eval;
mod metrics;
mod run;
mod schedule;
mod setup;

pub use crate::settings::{FinetuneConfig, Quantize};
pub use metrics::Metrics;
pub use run::{FinetuneHooks, StepReport, finetune, finetune_with};
