//! The git facts MLflow shows for a run's source: the commit and branch of the work tree the
//! workflow file is in (git run directly with arguments, never through a shell).

use std::path::Path;
use std::process::{Command, Stdio};

/// `(commit, branch)` of the work tree holding `dir`, when it is one and git is installed.
pub fn source(dir: &Path) -> (Option<String>, Option<String>) {
    let ask = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    if !dir.is_dir() {
        return (None, None);
    }
    let commit = ask(&["rev-parse", "--verify", "--quiet", "HEAD"]);
    let branch = ask(&["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD");
    (commit, branch)
}
