//! The one rule for names: workflow (and so schedule) names, step and parameter names, and run
//! ids. Each is 1 to [`MAX_NAME_LEN`] characters of its alphabet. The loader checks names when a
//! workflow is read or submitted, and the daemon and the CLI check every name a request or a
//! command takes with the same functions, so a name that was accepted can always be named again
//! (e.g. a schedule can always be removed).

/// The longest name of any kind, in bytes (all alphabets are ASCII).
pub const MAX_NAME_LEN: usize = 128;

/// A workflow (and schedule) name: `[a-z0-9-]`, 1 to [`MAX_NAME_LEN`] characters.
pub fn valid_workflow(s: &str) -> bool {
    fits(s)
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A step or parameter name: `[A-Za-z0-9_-]`, 1 to [`MAX_NAME_LEN`] characters (never `.`,
/// `/` or `..`).
pub fn valid_step(s: &str) -> bool {
    fits(s)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A run id as tuna makes them (`YYYYMMDD-HHMMSS-xxxx`), or anything of the same alphabet
/// (`[A-Za-z0-9-]`, 1 to [`MAX_NAME_LEN`] characters).
pub fn valid_run_id(s: &str) -> bool {
    fits(s) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether a name is over the length limit (its alphabet aside).
pub fn too_long(s: &str) -> bool {
    s.len() > MAX_NAME_LEN
}

/// What is wrong with a name of some kind (`"workflow"`, `"step"`, …) that `valid` refused,
/// in words: its length or its alphabet.
pub fn problem(kind: &str, s: &str, alphabet: &str) -> String {
    if s.is_empty() {
        format!("the {kind} name is empty")
    } else if too_long(s) {
        format!(
            "the {kind} name is {} characters long; names are at most {MAX_NAME_LEN}",
            s.len()
        )
    } else {
        format!("the {kind} name `{s}` is not {alphabet}")
    }
}

/// The label of a diagnostic on a refused name: its length when that is the trouble, else
/// `otherwise`.
pub fn label(s: &str, otherwise: &str) -> String {
    if too_long(s) {
        format!("{} characters; names are at most {MAX_NAME_LEN}", s.len())
    } else {
        otherwise.to_string()
    }
}

fn fits(s: &str) -> bool {
    !s.is_empty() && !too_long(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_length_limit_for_every_kind() {
        let at = "a".repeat(MAX_NAME_LEN);
        let over = "a".repeat(MAX_NAME_LEN + 1);
        for valid in [valid_workflow, valid_step, valid_run_id] {
            assert!(valid(&at));
            assert!(!valid(&over));
            assert!(!valid(""));
            for bad in ["..", "../x", "a/b", "a b", "a.b", "%2e%2e"] {
                assert!(!valid(bad), "{bad}");
            }
        }
        assert!(valid_run_id("20240101-000000-ab12"));
        assert!(valid_step("helm_eval-2"));
        assert!(!valid_workflow("Nightly"));
        assert!(problem("workflow", &over, "[a-z0-9-]+").contains("129 characters"));
    }
}
