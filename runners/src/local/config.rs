//! How a local runner is set up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::Gpu;

/// The settings of a [`LocalRunner`](super::LocalRunner).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// The runner's name, as workflows refer to it.
    pub name: String,
    /// How many jobs may run at once.
    pub slots: u32,
    /// The GPUs jobs may be given.
    pub gpus: Vec<Gpu>,
    /// The `tuna-shim` binary (it starts the supervisor).
    pub shim: PathBuf,
    /// How long a job gets between SIGTERM and SIGKILL when it is cancelled or times out.
    pub kill_grace: Duration,
    /// The environment every job starts from (the script gets exactly this, plus the job's
    /// own `env`): see [`StepEnv`](crate::StepEnv).
    pub base_env: BTreeMap<String, String>,
    /// The folder of the supervisor that starts the jobs (`HOME/supervisor`, shared by every
    /// tuna process of the home); a private temporary one when `None`.
    pub supervisor_dir: Option<PathBuf>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            name: "local".to_owned(),
            slots: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            gpus: Vec::new(),
            shim: PathBuf::from("tuna-shim"),
            kill_grace: Duration::from_secs(10),
            base_env: crate::StepEnv::Inherit.base(),
            supervisor_dir: None,
        }
    }
}
