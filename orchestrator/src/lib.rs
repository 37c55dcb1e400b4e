//! tuna: a workflow DAG orchestrator for LLM fine-tuning experiments.
//!
//! The crate's rooms: [`workflow`] (YAML → validated model, diagnostics), `dag` (the sealed
//! graph), `cas` (content-addressed artifacts), `store` (sled: runs, step records, cache
//! index), `engine` (dispatcher, cache, resume) and `cli` (the `tuna` binary's commands).

pub mod dag;
pub mod workflow;
