//! Running a one-line script without bash, the way make runs a simple recipe line.
//!
//! `bash -c 'touch out/a'` costs a bash start-up per step; for a script that is one simple
//! command (no quoting, expansion, redirection, operators, or a bash builtin or keyword first)
//! the shim executes the program directly with the same arguments, `PATH` lookup, working
//! folder and environment. Anything else goes to bash. A program that cannot be found exits
//! 127 with bash's message, as bash would.

/// The argv to execute directly, or None when the script needs bash.
pub(crate) fn simple_argv(script: &str, env: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let line = script.trim();
    if line.is_empty() || line.contains('\n') {
        return None;
    }
    if !line
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" -_./=:,+@%".contains(&b))
    {
        return None;
    }
    let argv: Vec<String> = line
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let first = argv.first()?;
    if first.contains('=') || BASH_WORDS.contains(&first.as_str()) {
        return None;
    }
    // Bash would read these before running anything.
    if env("BASH_ENV") || env("ENV") || env("BASH_FUNC_") {
        return None;
    }
    Some(argv)
}

/// Builtins and keywords: their behaviour inside bash differs from any program of that name.
const BASH_WORDS: &[&str] = &[
    ".",
    ":",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

#[cfg(test)]
mod tests {
    use super::simple_argv;

    fn no_env(_: &str) -> bool {
        false
    }

    #[test]
    fn simple_commands_run_directly() {
        assert_eq!(
            simple_argv("touch /tmp/x", &no_env),
            Some(vec!["touch".into(), "/tmp/x".into()])
        );
        assert_eq!(
            simple_argv("  python3 train.py --lr=1e-4  ", &no_env),
            Some(vec![
                "python3".into(),
                "train.py".into(),
                "--lr=1e-4".into()
            ])
        );
    }

    #[test]
    fn anything_shell_goes_to_bash() {
        for s in [
            "echo hi",
            "touch $HOME/x",
            "touch 'a b'",
            "a && b",
            "a; b",
            "a | b",
            "a > f",
            "ls *.txt",
            "FOO=1 cmd",
            "cd /tmp",
            "test -f x",
            "a\nb",
            "",
            "ls ~",
            "cmd # comment",
        ] {
            assert_eq!(simple_argv(s, &no_env), None, "{s:?}");
        }
    }

    #[test]
    fn bash_startup_files_force_bash() {
        assert_eq!(simple_argv("touch x", &|k| k == "BASH_ENV"), None);
    }
}
