//! Checks on names that arrive in requests (run ids, step names, file names), so that no
//! request can name a path outside tuna's folders.

/// A run id as tuna makes them (`YYYYMMDD-HHMMSS-xxxx`), or anything of the same alphabet.
pub fn valid_run_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A step name: letters, digits, `-` and `_` (never `.`, `/` or `..`).
pub fn valid_step(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A schedule (workflow) name: `[a-z0-9-]+`.
pub fn valid_workflow(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The last component of a submitted file name, made safe; `workflow.yaml` if nothing is left.
pub fn safe_file_name(s: &str) -> String {
    let base = s.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let clean = clean.trim_start_matches('.').to_string();
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
        assert!(valid_run_id("20240101-000000-ab12"));
        for bad in ["", "..", "../x", "a/b", "a b", "a.b", "%2e%2e"] {
            assert!(!valid_run_id(bad), "{bad}");
            assert!(!valid_step(bad), "{bad}");
        }
        assert!(valid_step("helm_eval-2"));
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..."), "workflow.yaml");
        assert_eq!(safe_file_name("a/b/wf.yaml"), "wf.yaml");
    }
}
