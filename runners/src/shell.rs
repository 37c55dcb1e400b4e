//! The one shell quoter: every value tuna puts into a shell command line — a step's rendered
//! `run:` script, the commands the ssh runner sends to a host — goes through [`quote`].

/// Words bash reads as syntax when they stand unquoted where a command starts.
const RESERVED: &[&str] = &[
    "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in",
    "select", "then", "time", "until", "while",
];

/// `s` as exactly one literal word for bash or any POSIX shell, wherever a word may stand
/// (argument, command name, assignment value, redirection target).
///
/// Text made only of `[A-Za-z0-9_./:,+@-]` that is not a reserved word and does not start with
/// `-` (an operator inside `[[ … ]]`) stays as it is; anything
/// else (the empty string included) is single-quoted, each `'` written `'\''`. Inside single
/// quotes nothing is special, so `$(…)`, backticks, `"`, `\`, newlines, `;`, `!`, globs and
/// `$VAR` all arrive byte for byte.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:,+@-".contains(&b))
        && !s.starts_with('-')
        && !RESERVED.contains(&s);
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn plain_words_stay_and_the_rest_is_single_quoted() {
        assert_eq!(quote("plain-word_1.0"), "plain-word_1.0");
        assert_eq!(quote("/a/b:c,d+e@f"), "/a/b:c,d+e@f");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("'; touch /tmp/x #"), "''\\''; touch /tmp/x #'");
        assert_eq!(quote("$HOME `id`"), "'$HOME `id`'");
        // Would be an assignment, a reserved word or a tilde expansion unquoted.
        assert_eq!(quote("PATH=/x"), "'PATH=/x'");
        assert_eq!(quote("if"), "'if'");
        assert_eq!(quote("~root"), "'~root'");
    }

    /// Every hostile value arrives byte for byte as one argument, as a command name's argument
    /// and as an assignment's value, and no file is created.
    #[test]
    fn hostile_values_reach_bash_as_one_literal_word() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let m = marker.display();
        let values = [
            format!("$(touch {m})"),
            format!("`touch {m}`"),
            format!("'; touch {m}; '"),
            format!("\"; touch {m}; \""),
            format!("\\'; touch {m} #"),
            format!("a\ntouch {m}\n"),
            format!("x; touch {m}"),
            "$HOME ${PATH} !! !x * ? [a] {a,b} ~".to_string(),
            "if".to_string(),
            String::new(),
        ];
        for v in &values {
            let q = quote(v);
            let script = format!("printf '%s' {q}; x={q}; printf '|%s' \"$x\"");
            let out = std::process::Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .output()
                .unwrap();
            assert!(out.status.success(), "{v:?}: {out:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("{v}|{v}"),
                "{v:?}"
            );
            assert!(!marker.exists(), "{v:?} ran a command");
        }
    }
}
