//! Checks on names that arrive in requests (run ids, step names, file names), so that no
//! request can name a path outside tuna's folders. The rule for names is
//! [`crate::workflow::names`], the same the loader applies.

pub use crate::workflow::names::{valid_run_id, valid_step, valid_workflow};

/// The longest file name a submission keeps (its end, so the extension stays).
const MAX_FILE_NAME: usize = 128;

/// The last component of a submitted file name, made safe (at most 128 characters, which
/// every filesystem takes); `workflow.yaml` if nothing is left.
pub fn safe_file_name(s: &str) -> String {
    let base = s.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    // ASCII only by now, so any byte offset is a character boundary.
    let tail = &clean[clean.len().saturating_sub(MAX_FILE_NAME)..];
    let clean = tail.trim_start_matches('.').to_string();
    if clean.is_empty() {
        "workflow.yaml".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_reaches_outside() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..."), "workflow.yaml");
        assert_eq!(safe_file_name("a/b/wf.yaml"), "wf.yaml");
        let long = format!("{}.yaml", "z".repeat(5000));
        let kept = safe_file_name(&long);
        assert_eq!(kept.len(), 128);
        assert!(kept.ends_with("zz.yaml"));
    }
}
