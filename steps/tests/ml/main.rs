//! Tests of the native ML core (feature `torch`) against Hugging Face transformers and PEFT,
//! with tiny random models built at test time by the project's Python venv.

mod common;
mod data;
mod eval_loss;
mod finetune;
mod llama;
mod llama_train;
mod loading;
mod lora;
mod nf4;
mod parity;
mod serve;
