//! tuna: a workflow DAG orchestrator for LLM fine-tuning experiments.
//!
//! The crate's rooms: [`workflow`] (YAML → validated model, diagnostics), [`dag`] (the sealed
//! graph), [`cas`] (content-addressed artifacts), [`store`] (sled: runs, step records, cache
//! index), [`project`] (the files a submission carries to the daemon), [`cache`] (keys and
//! rerun reasons), [`engine`] (dispatcher, executors, placement, resume, control socket),
//! [`tracking`] (export to MLflow), [`daemon`] (`tuna serve`) and [`cli`] (the `tuna` binary's commands).

pub mod cache;
pub mod cas;
pub mod cli;
pub mod daemon;
pub mod dag;
pub mod engine;
pub mod project;
pub mod store;
pub mod tracking;
pub mod workflow;
