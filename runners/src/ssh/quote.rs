//! Quoting for the remote POSIX shell: every value the runner puts into a remote command line.

/// `s` as one word for a POSIX shell: single-quoted, with each `'` written as `'\''`.
pub fn sh_quote(s: &str) -> String {
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
    use super::sh_quote;

    #[test]
    fn quotes_single_quotes_and_leaves_the_rest_literal() {
        assert_eq!(sh_quote("plain"), "'plain'");
        assert_eq!(sh_quote("'; touch /tmp/x #"), "''\\''; touch /tmp/x #'");
        assert_eq!(sh_quote("$HOME `id`"), "'$HOME `id`'");
    }
}
