//! tuna: a workflow DAG orchestrator for LLM fine-tuning experiments.
//!
//! The crate's rooms: [`workflow`] (YAML → validated model, diagnostics), [`dag`] (the sealed
//! graph), [`cas`] (content-addressed artifacts), [`store`] (sled: runs, step records, cache
//! index), [`cache`] (keys and rerun reasons), [`engine`] (dispatcher, executors, placement,
//! resume, control socket) and [`cli`] (the `tuna` binary's commands).

pub mod cache;
pub mod cas;
pub mod cli;
pub mod daemon;
pub mod dag;
pub mod engine;
pub mod store;
pub mod workflow;
