//! Where tuna keeps things: `$TUNA_HOME` with `db/` (sled), `cas/` (artifacts), `runs/` (attempt
//! folders with logs and metrics) and `control.sock` (the store owner's socket).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `$TUNA_HOME` if set; else the nearest `.tuna/` holding a store in `start` (the current
    /// folder) or a folder above it; else a new `.tuna/` at the top of the git work tree that
    /// holds `start`; else `start/.tuna`. So every command typed anywhere in a project finds
    /// the same home, whatever folder its workflow file sits in.
    pub fn discover(start: &Path) -> Home {
        if let Some(h) = std::env::var_os("TUNA_HOME").filter(|h| !h.is_empty()) {
            return Home {
                root: absolute(Path::new(&h)),
            };
        }
        Home::find(&absolute(start))
    }

    /// [`Home::discover`] without `$TUNA_HOME`, from an absolute folder.
    fn find(start: &Path) -> Home {
        if let Some(dir) = start
            .ancestors()
            .find(|dir| dir.join(".tuna").join("db").is_dir())
        {
            return Home {
                root: dir.join(".tuna"),
            };
        }
        let top = start
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(start);
        Home {
            root: top.join(".tuna"),
        }
    }

    /// Makes the home (if needed) readable by its owner only (0700): it holds logs, params and
    /// submitted projects that are nobody else's business.
    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.root)?;
        let private = std::fs::Permissions::from_mode(0o700);
        if std::fs::metadata(&self.root)?.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(&self.root, private)?;
        }
        Ok(())
    }

    /// Whether the store exists yet (a first `tuna run` makes it).
    pub fn exists(&self) -> bool {
        self.db().is_dir()
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
    /// The folder of the supervisor that starts this home's local steps.
    pub fn supervisor(&self) -> PathBuf {
        self.root.join("supervisor")
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

#[cfg(test)]
mod tests {
    use super::Home;
    use std::fs;

    fn discover(start: &std::path::Path) -> std::path::PathBuf {
        Home::find(start).root
    }

    #[test]
    fn a_new_home_goes_to_the_top_of_the_git_work_tree() {
        let t = tempfile::tempdir().unwrap();
        let sub = t.path().join("proj/workflows/deep");
        fs::create_dir_all(&sub).unwrap();
        fs::create_dir(t.path().join("proj/.git")).unwrap();
        assert_eq!(discover(&sub), t.path().join("proj/.tuna"));
    }

    #[test]
    fn outside_a_work_tree_a_new_home_is_in_the_current_folder() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(discover(t.path()), t.path().join(".tuna"));
    }

    #[test]
    fn an_existing_store_above_wins_over_the_work_tree_top() {
        let t = tempfile::tempdir().unwrap();
        let sub = t.path().join("proj/a/b");
        fs::create_dir_all(&sub).unwrap();
        fs::create_dir(t.path().join("proj/.git")).unwrap();
        fs::create_dir_all(t.path().join("proj/a/.tuna/db")).unwrap();
        assert_eq!(discover(&sub), t.path().join("proj/a/.tuna"));
    }
}
