//! End-to-end tests: each drives the real `tuna` binary in a temporary project.

mod cache;
mod cancel;
mod cli;
mod containment;
mod crash;
mod daemon;
mod daemon_cron;
mod daemon_harness;
mod daemon_leaderboard;
mod daemon_nights;
mod daemon_project;
mod daemon_project_ml;
mod daemon_upload;
mod examples;
mod failure;
mod hostile_files;
mod kinds;
mod leaderboard_local;
mod placement;
mod quoting;
mod ray;
mod ssh;
mod ssh_artifacts;
mod ssh_gc;
mod step_env;
mod store;
