//! `tuna pull`: a step's outputs written into a folder on this machine, wherever they are
//! kept (the local store, or a runner's store on its machine, checked by digest).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::artifacts;
use super::engine::{Engine, EngineError};
use crate::store::Location;

/// One output written by [`Engine::pull`].
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    pub output: String,
    /// Where it was kept.
    pub location: Location,
    pub path: PathBuf,
    /// Its bytes (all files of a folder).
    pub bytes: u64,
}

impl Engine {
    /// Writes every output of `step` in `run` under `dir` (`dir/OUTPUT`), replacing what is
    /// there. Blocks while it fetches from runners.
    pub fn pull(&self, run: &str, step: &str, dir: &Path) -> Result<Vec<Pulled>, EngineError> {
        let rec = self.store.step(run, step)?.ok_or_else(|| {
            if matches!(self.store.run(run), Ok(None)) {
                EngineError::NoSuchRun(run.to_string())
            } else {
                EngineError::NoSuchStep {
                    run: run.to_string(),
                    step: step.to_string(),
                }
            }
        })?;
        if !rec.status.is_done() {
            return Err(EngineError::Invalid(format!(
                "step `{step}` of run `{run}` is {}: only a passed or cached step has outputs",
                rec.status.as_str()
            )));
        }
        let mut pulled = Vec::new();
        for (out, digest) in &rec.outputs {
            let dest = dir.join(out.trim_end_matches('/'));
            let location = Location::of(&rec.locations, out).clone();
            let failed = |e: String| EngineError::Artifacts(format!("pulling output {out}: {e}"));
            let bytes = match location.runner() {
                None => {
                    self.cas
                        .materialize_verified(digest, &dest)
                        .map_err(|e| failed(e.to_string()))?;
                    self.cas.size(digest).map_err(|e| failed(e.to_string()))?
                }
                Some(name) => {
                    let runner = self.runner_named(name).ok_or_else(|| {
                        failed(format!(
                            "it is kept on runner `{name}`, which is not in the runner inventory"
                        ))
                    })?;
                    let store = runner
                        .blob_store()
                        .ok_or_else(|| failed(format!("runner `{name}` keeps no outputs")))?;
                    artifacts::pull(&self.cas, store, digest, &dest).map_err(failed)?
                }
            };
            pulled.push(Pulled {
                output: out.clone(),
                location,
                path: dest,
                bytes,
            });
        }
        Ok(pulled)
    }
}
