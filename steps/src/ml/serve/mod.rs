//! The model server: a loaded model (plus adapter) behind the HTTP API that HELM's HTTP client
//! calls (`/process`, `/tokenize`, `/decode`).

mod api;
mod http;
mod served;

pub use api::{
    DecodeRequest, DecodeResponse, MAX_TOP_K_PER_TOKEN, ProcessRequest, ProcessResponse, TokenOut,
    TokenizeRequest, TokenizeResponse,
};
pub use http::{ApiError, router, serve};
pub use served::ServedModel;
