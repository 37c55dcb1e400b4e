//! The one event enum that joins executors (one per launched attempt) to the dispatcher, and
//! the control messages a run accepts from outside (a signal, `tuna cancel`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use tuna_runners::{Handle, Outcome};

use crate::cas::Digest;
use crate::store::Location;

/// From an executor to the dispatcher.
#[derive(Debug)]
pub enum Event {
    /// The runner started the attempt (or found it already started) and named it.
    Launched {
        step: String,
        attempt: u32,
        handle: Handle,
    },
    /// The attempt ended. On success, its outputs were collected already.
    Finished {
        step: String,
        attempt: u32,
        result: Result<Outcome, String>,
        collected: Option<Result<Collected, String>>,
    },
}

/// A successful attempt's outputs (in the artifact store, or kept on the runner) and metrics.
#[derive(Debug, Clone)]
pub struct Collected {
    pub outputs: BTreeMap<String, Digest>,
    /// Where each output is kept.
    pub locations: BTreeMap<String, Location>,
    pub outputs_dir: PathBuf,
    pub metrics: BTreeMap<String, f64>,
}

/// From outside to a run's dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// `tuna cancel`: stop, run marked Cancelled.
    Cancel,
    /// A signal to tuna: stop, run marked Interrupted.
    Interrupt,
}
