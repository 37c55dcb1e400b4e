//! "Did you mean …?": the closest known word to a misspelt one. Only runs on errors.

/// The candidate closest to `word`, if one is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
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
    }
}
