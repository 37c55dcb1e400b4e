//! Where an attempt's files are. A step with a folder of its own — it declares outputs or
//! inputs, is a built-in kind (`uses:`), or runs on another machine — has them in its attempt
//! folder `runs/RUN/STEP/N/`: `work/` (its working directory and `$TUNA_OUTPUTS`),
//! `metrics.json`, `progress.json` and the logs. A step without one (a `run:` script on this
//! machine that declares neither) runs in the run's shared folder `runs/RUN/.work/`, and its
//! metrics and progress files are `runs/RUN/.steps/STEP.N.metrics.json` and
//! `….progress.json`: making three folders per step would cost more than many short steps
//! themselves. Its attempt folder is made only when something goes in it (a log's first
//! byte, a cancel). Step names have no `.`, so neither folder can be a step's.

use std::path::{Path, PathBuf};

use crate::workflow::{Action, Step};

/// The run's folder where steps without a folder of their own run.
const SHARED_WORK: &str = ".work";
/// The run's folder of those steps' metrics and progress files.
const SHARED_FILES: &str = ".steps";
/// In an attempt folder: the step's metrics (`$TUNA_METRICS`).
const METRICS_FILE: &str = "metrics.json";
/// In an attempt folder: the step's progress (`$TUNA_PROGRESS`).
pub(crate) const PROGRESS_FILE: &str = "progress.json";

/// Whether a step gets a folder of its own on this machine: it declares outputs (collected
/// from it) or inputs (placed in it), or it is a built-in kind (whose `with:` paths are
/// placed there, and whose state sits beside it).
pub fn has_own_folder(step: &Step) -> bool {
    !step.outputs.is_empty()
        || !step.inputs.is_empty()
        || matches!(step.action, Action::Uses { .. })
}

/// The paths of one attempt's files.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptFiles {
    /// The working directory (`$TUNA_OUTPUTS`).
    pub work: PathBuf,
    /// `$TUNA_METRICS`.
    pub metrics: PathBuf,
    /// `$TUNA_PROGRESS`.
    pub progress: PathBuf,
    /// Whether they are in the attempt's own folder.
    pub own_folder: bool,
}

impl AttemptFiles {
    /// The files of the attempt whose folder is `attempt_dir` (`runs/RUN/STEP/N`).
    pub fn new(attempt_dir: &Path, own_folder: bool) -> AttemptFiles {
        if own_folder {
            return AttemptFiles {
                work: attempt_dir.join("work"),
                metrics: attempt_dir.join(METRICS_FILE),
                progress: attempt_dir.join(PROGRESS_FILE),
                own_folder,
            };
        }
        let (run, stem) = shared_place(attempt_dir);
        AttemptFiles {
            work: run.join(SHARED_WORK),
            metrics: run
                .join(SHARED_FILES)
                .join(format!("{stem}.{METRICS_FILE}")),
            progress: run
                .join(SHARED_FILES)
                .join(format!("{stem}.{PROGRESS_FILE}")),
            own_folder,
        }
    }

    /// The progress file of an attempt known only by its folder: its own folder's, else the
    /// shared one.
    pub fn progress_of(attempt_dir: &Path) -> PathBuf {
        let own = attempt_dir.join(PROGRESS_FILE);
        if own.exists() {
            own
        } else {
            AttemptFiles::new(attempt_dir, false).progress
        }
    }

    /// Makes the folders the attempt's files go in, when it has no folder of its own (the
    /// runner makes the work folder of one that has).
    pub fn make_shared(&self) -> std::io::Result<()> {
        if !self.own_folder {
            for dir in [Some(self.work.as_path()), self.metrics.parent()]
                .into_iter()
                .flatten()
            {
                std::fs::create_dir_all(dir)?;
            }
        }
        Ok(())
    }
}

/// The run's folder and `STEP.N` for an attempt folder `runs/RUN/STEP/N`.
fn shared_place(attempt_dir: &Path) -> (PathBuf, String) {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    };
    let step_dir = attempt_dir.parent();
    let run = step_dir.and_then(Path::parent).unwrap_or(attempt_dir);
    (
        run.to_path_buf(),
        format!("{}.{}", name(step_dir), name(Some(attempt_dir))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_without_its_own_folder_shares_the_runs_folders() {
        let files = AttemptFiles::new(Path::new("/h/runs/r1/train/2"), false);
        assert_eq!(files.work, Path::new("/h/runs/r1/.work"));
        assert_eq!(
            files.metrics,
            Path::new("/h/runs/r1/.steps/train.2.metrics.json")
        );
        assert_eq!(
            files.progress,
            Path::new("/h/runs/r1/.steps/train.2.progress.json")
        );
        let own = AttemptFiles::new(Path::new("/h/runs/r1/train/2"), true);
        assert_eq!(own.work, Path::new("/h/runs/r1/train/2/work"));
        assert_eq!(own.metrics, Path::new("/h/runs/r1/train/2/metrics.json"));
    }

    #[test]
    fn progress_of_prefers_the_attempts_own_folder() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r/s/1");
        assert_eq!(
            AttemptFiles::progress_of(&dir),
            t.path().join("r/.steps/s.1.progress.json")
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("progress.json"), "{}").unwrap();
        assert_eq!(AttemptFiles::progress_of(&dir), dir.join("progress.json"));
    }
}
