//! OPT (Meta's Open Pre-trained Transformer) as transformers implements it.

mod attention;
mod config;
mod layer;
mod model;

pub use model::OptModel;
