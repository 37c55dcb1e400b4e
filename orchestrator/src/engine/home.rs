//! Where tuna keeps things: `$TUNA_HOME` with `db/` (sled), `cas/` (artifacts), `runs/` (attempt
//! folders with logs and metrics) and `control.sock` (the store owner's socket).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `$TUNA_HOME` if set; else the nearest `.tuna/` in `start` or a folder above it; else
    /// `start/.tuna`.
    pub fn discover(start: &Path) -> Home {
        if let Some(h) = std::env::var_os("TUNA_HOME").filter(|h| !h.is_empty()) {
            return Home {
                root: absolute(Path::new(&h)),
            };
        }
        let start = absolute(start);
        for dir in start.ancestors() {
            let candidate = dir.join(".tuna");
            if candidate.join("db").is_dir() {
                return Home { root: candidate };
            }
        }
        Home {
            root: start.join(".tuna"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("db")
    }
    pub fn cas(&self) -> PathBuf {
        self.root.join("cas")
    }
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }
    /// `runs/RUN/STEP/ATTEMPT`.
    pub fn attempt_dir(&self, run: &str, step: &str, attempt: u32) -> PathBuf {
        self.runs().join(run).join(step).join(attempt.to_string())
    }
    /// Where a cache hit's outputs are restored when a downstream step needs them.
    pub fn restored_dir(&self, run: &str, step: &str) -> PathBuf {
        self.runs().join(run).join(step).join("cached")
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}
