//! Tests of the native ML core (feature `torch`) against Hugging Face transformers and PEFT,
//! with tiny random models built at test time by the project's Python venv.

mod common;
mod loading;
mod parity;
