//! End-to-end tests: each drives the real `tuna` binary in a temporary project.

mod cache;
mod cancel;
mod cli;
mod crash;
mod examples;
mod failure;
mod placement;
mod ssh;
mod store;
