//! "Did you mean …?": the closest known word to a misspelt one. Only runs on errors.

/// Longer than any name tuna knows (names are at most 128 characters): not a typo of one.
/// Comparing it would cost its length times the window of the comparison, per candidate
/// (the fuzzer found a 171 KB time zone taking a second).
const LONGEST_TYPO: usize = 128;

/// The candidate closest to `word`, if one is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.len() > LONGEST_TYPO {
        return None;
    }
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let w = norm(word);
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let score = if norm(c) == w {
            2.0
        } else {
            strsim::jaro_winkler(&w, &norm(c))
        };
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` as a help line, if there is a close candidate.
pub(crate) fn help_for<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_style_slips() {
        assert_eq!(
            did_you_mean("need", ["needs", "run", "uses"]),
            Some("needs")
        );
        assert_eq!(did_you_mean("runs_on", ["runs-on", "run"]), Some("runs-on"));
        assert_eq!(
            did_you_mean("tiemout", ["timeout", "retry"]),
            Some("timeout")
        );
        assert_eq!(did_you_mean("zzz", ["needs", "run"]), None);
        let long = format!("E{}", "x".repeat(200_000));
        assert_eq!(did_you_mean(&long, ["Europe/Amsterdam", "Etc/UTC"]), None);
    }
}
