//! The model server: a loaded model (plus adapter) behind the HTTP API that HELM's HTTP client
//! calls (`/process`, `/tokenize`, `/decode`).

mod api;
mod engine;
mod http;

pub use api::{
    DecodeRequest, DecodeResponse, MAX_TOP_K_PER_TOKEN, ProcessRequest, ProcessResponse, TokenOut,
    TokenizeRequest, TokenizeResponse,
};
pub use engine::Engine;
pub use http::{ApiError, router, serve};
