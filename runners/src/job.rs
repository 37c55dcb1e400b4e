//! The job a runner is asked to run: one attempt of one step, fully resolved.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One attempt of one step, with everything resolved: the script to run, its environment, the
/// folder it runs in and the resources it was given. A runner needs nothing else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub run_id: String,
    pub step: String,
    pub attempt: u32,
    /// A bash script, run as `bash -euo pipefail -c SCRIPT`. Parameters in it are already quoted.
    pub script: String,
    /// The environment the script gets on top of the runner's own (`TUNA_*` included).
    pub env: BTreeMap<String, String>,
    /// The attempt folder on the orchestrator's machine: logs, metrics and the work folder.
    pub attempt_dir: PathBuf,
    /// Wall-clock limit; the runner kills the whole process group past it.
    pub timeout: Option<Duration>,
    /// How long the job may wait for resources on a runner that queues it (a Ray cluster
    /// keeps a job `PENDING` until a node can take it); past it the runner gives it up with
    /// [`Outcome::NoCapacity`](crate::Outcome::NoCapacity). `None`: it may wait as long as
    /// it takes.
    #[serde(default)]
    pub wait_for_capacity: Option<Duration>,
    pub resources: Resources,
    /// Files and folders the job needs in its attempt folder, for runners whose attempt folder
    /// is on another machine (the local runner's job reads them in place).
    #[serde(default)]
    pub stage: Vec<Stage>,
    /// The declared outputs (paths relative to the work folder, folders end in `/`) that a
    /// remote runner brings back into the local work folder after a successful attempt.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Names of `env` entries that hold secrets: their values are masked (`***`) in the
    /// attempt's logs.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Where the script runs when the step has no folder of its own (a step on this machine
    /// that declares no outputs and no inputs: the run's folder for such steps). Its attempt
    /// folder is then made only when something goes in it (a log's first byte, a cancel).
    /// The job's builder makes that folder. `None`: `attempt_dir/work`, which the launch
    /// makes.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
}

impl Job {
    /// The folder the script runs in (see [`Job::workdir`]).
    pub fn cwd(&self) -> PathBuf {
        self.workdir
            .clone()
            .unwrap_or_else(|| self.attempt_dir.join("work"))
    }

    /// The values of the job's secrets long enough to be masked in its logs.
    pub fn secret_values(&self) -> Vec<Vec<u8>> {
        self.secrets
            .iter()
            .filter_map(|name| self.env.get(name))
            .filter(|v| v.len() >= crate::redact::MIN_LEN)
            .map(|v| v.as_bytes().to_vec())
            .collect()
    }
}

/// One file or folder to place into a remote attempt folder before the job starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stage {
    /// Where it is on the orchestrator's machine.
    pub source: PathBuf,
    /// Where it goes, relative to the attempt folder (`work/data.txt`, `in/prep/clean.txt`).
    pub dest: String,
    /// Set when the content is in the runner's own store on its machine already (an output
    /// kept there): its blobs are placed from there and `source` is not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<crate::KeptOutput>,
}

impl Stage {
    /// A file or folder on the orchestrator's machine.
    pub fn local(source: PathBuf, dest: String) -> Stage {
        Stage {
            source,
            dest,
            stored: None,
        }
    }
}

/// What a job was given: CPU slots and whole GPUs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub slots: u32,
    pub gpus: Vec<Gpu>,
}

impl Resources {
    /// The value of `CUDA_VISIBLE_DEVICES` for these GPUs (empty: none).
    pub fn cuda_visible_devices(&self) -> String {
        let indices: Vec<String> = self.gpus.iter().map(|g| g.index.to_string()).collect();
        indices.join(",")
    }
}

/// One GPU slot of a runner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Gpu {
    /// Lower-case type, e.g. `a100`.
    pub kind: String,
    /// The index the job sees in `CUDA_VISIBLE_DEVICES`.
    pub index: u32,
}
