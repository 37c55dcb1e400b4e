//! The Llama family (Llama-2, Mistral) as transformers implements it: RMSNorm, rotary position
//! embeddings, grouped-query attention and a SwiGLU MLP.

mod attention;
mod config;
mod layer;
mod model;
mod rms_norm;
mod rotary;

pub use model::LlamaModel;
