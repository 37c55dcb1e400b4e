//! The challenge's HTTP API as HELM's `HTTPModelClient` speaks it: request and response bodies
//! of `/process`, `/tokenize` and `/decode`, and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest `top_k_per_token` answered.
pub const MAX_TOP_K_PER_TOKEN: i64 = 20;

/// `POST /process`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessRequest {
    /// Text to continue.
    pub prompt: String,
    /// Sampling temperature; at most 1e-5 (HELM sends 1e-7 for 0) means greedy.
    #[serde(default = "one")]
    pub temperature: f64,
    /// Completions wanted; the response format carries one, so only 1 is accepted.
    #[serde(default = "one_u")]
    pub num_return_sequences: i64,
    /// Tokens to generate (0 with `echo_prompt` scores the prompt only).
    #[serde(default = "default_max_new")]
    pub max_new_tokens: i64,
    /// Nucleus sampling mass, in (0, 1].
    #[serde(default = "one")]
    pub top_p: f64,
    /// Sample only among the k most likely tokens (0 = all).
    #[serde(default)]
    pub top_k: i64,
    /// Return the prompt's tokens (with log-probabilities) before the completion.
    #[serde(default)]
    pub echo_prompt: bool,
    /// Alternatives listed per token in `top_logprob`.
    #[serde(default = "one_u")]
    pub top_k_per_token: i64,
    /// Generation stops before the first of these strings.
    #[serde(default)]
    pub stop_sequences: Vec<String>,
    /// Seed of sampling (the same seed gives the same completion).
    #[serde(default)]
    pub seed: Option<u64>,
}

fn one() -> f64 {
    1.0
}
fn one_u() -> i64 {
    1
}
fn default_max_new() -> i64 {
    16
}

impl ProcessRequest {
    /// The first problem with the request, if any.
    pub fn problem(&self, max_positions: i64) -> Option<String> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Some(format!(
                "temperature must be a number ≥ 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Some(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if self.num_return_sequences != 1 {
            return Some(format!(
                "num_return_sequences must be 1, got {}",
                self.num_return_sequences
            ));
        }
        if self.max_new_tokens < 0 || self.max_new_tokens >= max_positions {
            return Some(format!(
                "max_new_tokens must be in [0, {}), got {}",
                max_positions, self.max_new_tokens
            ));
        }
        if self.max_new_tokens == 0 && !self.echo_prompt {
            return Some("max_new_tokens is 0 and echo_prompt is false: nothing to return".into());
        }
        if !(0..=MAX_TOP_K_PER_TOKEN).contains(&self.top_k_per_token) {
            return Some(format!(
                "top_k_per_token must be in [0, {MAX_TOP_K_PER_TOKEN}], got {}",
                self.top_k_per_token
            ));
        }
        if self.top_k < 0 {
            return Some(format!("top_k must be ≥ 0, got {}", self.top_k));
        }
        if self.stop_sequences.iter().any(String::is_empty) {
            return Some("stop_sequences must not contain an empty string".into());
        }
        None
    }
}

/// One token of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenOut {
    /// The token's text.
    pub text: String,
    /// Its log-probability under the model.
    pub logprob: f64,
    /// The most likely alternatives at its position: text → log-probability.
    pub top_logprob: BTreeMap<String, f64>,
}

/// Response of `/process`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessResponse {
    /// The completion (with the prompt first when echoed), surrounding whitespace stripped.
    pub text: String,
    /// Its tokens.
    pub tokens: Vec<TokenOut>,
    /// Sum of the tokens' log-probabilities.
    pub logprob: f64,
    /// Seconds spent.
    pub request_time: f64,
}

/// `POST /tokenize`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenizeRequest {
    /// Text to split.
    pub text: String,
    /// Cut to `max_length` tokens.
    #[serde(default)]
    pub truncation: bool,
    /// Limit used with `truncation`.
    #[serde(default)]
    pub max_length: Option<usize>,
}

/// Response of `/tokenize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizeResponse {
    /// Token ids.
    pub tokens: Vec<i64>,
    /// Seconds spent.
    pub request_time: f64,
}

/// `POST /decode`.
#[derive(Debug, Clone, Deserialize)]
pub struct DecodeRequest {
    /// Token ids.
    pub tokens: Vec<i64>,
}

/// Response of `/decode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeResponse {
    /// The text.
    pub text: String,
    /// Seconds spent.
    pub request_time: f64,
}
