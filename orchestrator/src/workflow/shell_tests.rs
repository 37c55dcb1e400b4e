//! Tests of `shell_lex` and `Template::render_script`: the place of every reference in a table
//! of scripts, and hostile values rendered in each context and run by bash.

use super::shell_lex::{Place, Why, places};
use super::template::{Ref, Template};

fn placed(script: &str) -> Vec<Result<Place, Why>> {
    places(&Template::parse(script).unwrap())
}

#[test]
fn every_context_gets_its_place() {
    use Place::*;
    let ok = |s: &str, want: &[Place]| {
        let got = placed(s);
        let want: Vec<Result<Place, Why>> = want.iter().map(|p| Ok(*p)).collect();
        assert_eq!(got, want, "{s}");
    };
    ok("echo ${{ params.y }}", &[Bare]);
    ok("x=${{ params.y }} cmd --a=${{ params.y }}", &[Bare, Bare]);
    ok(
        "echo \"a ${{ params.y }} b\" 'c ${{ params.y }}'",
        &[Double, Single],
    );
    ok(
        "echo $'a ${{ params.y }}' $\"${{ params.y }}\"",
        &[AnsiC, Double],
    );
    ok(
        "echo \"$(echo ${{ params.y }} \"${{ params.y }}\")\"",
        &[Bare, Double],
    );
    ok(
        "cat <(echo ${{ params.y }}) <<< ${{ params.y }}",
        &[Bare, Bare],
    );
    ok(
        "echo a # ${{ params.y }}\necho ${{ params.y }}",
        &[Comment, Bare],
    );
    ok("echo a#${{ params.y }}", &[Bare]);
    ok(
        "cat <<EOF\n${{ params.y }} \"${{ params.y }}\"\nEOF\necho ${{ params.y }}",
        &[Heredoc, Heredoc, Bare],
    );
    ok(
        "cat <<-EOF; echo ${{ params.y }}\n\t${{ params.y }}\n\tEOF\n'${{ params.y }}'",
        &[Bare, Heredoc, Single],
    );
    ok(
        "[[ ${{ params.y }} == x ]] && echo ${{ params.y }}",
        &[Bare, Bare],
    );
    ok(
        "case ${{ params.y }} in a) echo ${{ params.y }};; esac",
        &[Bare, Bare],
    );
    ok("echo $$${{ params.y }} \\$ ${{ params.y }}", &[Bare, Bare]);
    ok(
        "f() { echo ${{ params.y }}; }; (echo ${{ params.y }})",
        &[Bare, Bare],
    );
    ok("echo ${HOME} $((1 + 2)) `id` ${{ params.y }}", &[Bare]);
}

#[test]
fn contexts_bash_would_read_as_code_are_refused() {
    use Why::*;
    let refused = |s: &str, why: Why| {
        let got = placed(s);
        assert!(
            got.contains(&Err(why.clone())),
            "{s}: {got:?}, wanted {why:?}"
        );
    };
    refused("echo \\${{ params.y }}", Escaped);
    refused("echo \"\\${{ params.y }}\"", Escaped);
    refused("echo a$${{ params.y }}", AfterDollar);
    refused("echo ${x:-${{ params.y }}}", ParamExpansion);
    refused("echo \"${x:-'${{ params.y }}'}\"", ParamExpansion);
    refused("echo $(( ${{ params.y }} + 1 ))", Arithmetic);
    refused("(( n = ${{ params.y }} ))", Arithmetic);
    refused("echo $[ ${{ params.y }} ]", Arithmetic);
    refused("echo `echo ${{ params.y }}`", Backticks);
    refused("echo \"`echo ${{ params.y }}`\"", Backticks);
    refused("cat <<'EOF'\n${{ params.y }}\nEOF", QuotedHeredoc);
    refused("cat <<\"EOF\"\n${{ params.y }}\nEOF", QuotedHeredoc);
    refused("cat <<\\EOF\n${{ params.y }}\nEOF", QuotedHeredoc);
    refused("cat <<EOF\n$(echo ${{ params.y }})\nEOF", HeredocExpansion);
    refused("cat <<EOF\n\\${{ params.y }}\nEOF", Escaped);
    refused("eval echo ${{ params.y }}", CodeArgument("eval".into()));
    refused("x=1 let n=${{ params.y }}", CodeArgument("let".into()));
    refused("trap ${{ params.y }} EXIT", CodeArgument("trap".into()));
    refused(
        "eval \"train ${{ params.y }}\"",
        CodeArgument("eval".into()),
    );
    refused(
        "trap 'rm ${{ params.y }}' EXIT",
        CodeArgument("trap".into()),
    );
    refused(
        "eval \"$(echo ${{ params.y }})\"",
        CodeArgument("eval".into()),
    );
    assert_eq!(
        placed("x=$(eval echo a); eval b; echo ${{ params.y }}"),
        vec![Ok(Place::Bare)]
    );
    refused("[[ ${{ params.y }} -eq 1 ]]", ArithmeticTest);
    // Where the lexer cannot be sure, every later reference is refused.
    let got = placed("x=$(case a in a) echo;; esac); echo ${{ params.y }}");
    assert!(matches!(got[0], Err(Uncertain(_))), "{got:?}");
    let got = placed("cat <<${{ params.y }}\nx\n${{ params.y }}\n");
    assert!(
        got.iter().all(|p| matches!(p, Err(Uncertain(_)))),
        "{got:?}"
    );
    // Bash finds the end of a here-document line by line, before expanding anything.
    assert_eq!(
        placed("cat <<EOF\n$(echo\n)\nEOF\necho ${{ params.y }}"),
        vec![Ok(Place::Bare)]
    );
    refused(
        "cat <<EOF\n$(echo \")\"\n${{ params.y }})\nEOF",
        HeredocExpansion,
    );
    refused("cat <<EOF\n`echo\n${{ params.y }}`\nEOF", HeredocExpansion);
    // A `case` outside `$(…)` is fine, and so is a later unrelated command.
    assert_eq!(
        placed("case a in a) echo;; esac; echo ${{ params.y }}"),
        vec![Ok(Place::Bare)]
    );
}

/// Each script prints the value it is given; `{v}` in `expect` is the value.
const CONTEXTS: &[(&str, &str)] = &[
    ("printf %s ${{ params.y }}", "{v}"),
    ("printf %s \"<${{ params.y }}>\"", "<{v}>"),
    ("printf %s '<${{ params.y }}>'", "<{v}>"),
    ("printf %s $'<${{ params.y }}>\\t'", "<{v}>\t"),
    ("x=${{ params.y }}; printf %s \"$x\"", "{v}"),
    ("x=\"${{ params.y }}\"; printf %s \"$x\"", "{v}"),
    ("export X=${{ params.y }}; printf %s \"$X\"", "{v}"),
    (
        "x=$(printf %s ${{ params.y }}; echo .); printf %s \"${x%.}\"",
        "{v}",
    ),
    (
        "x=\"$(printf %s \"${{ params.y }}\"; echo .)\"; printf %s \"${x%.}\"",
        "{v}",
    ),
    ("cat <(printf %s ${{ params.y }})", "{v}"),
    ("cat <<< ${{ params.y }}", "{v}\n"),
    ("cat <<EOF\n${{ params.y }}\nEOF", "{v}\n"),
    (
        "cat <<EOF\n[\"${{ params.y }}\" '${{ params.y }}']\nEOF",
        "[\"{v}\" '{v}']\n",
    ),
    ("cat <<-EOF\n\t${{ params.y }}\n\tEOF\nprintf .", "{v}\n."),
    ("printf ok # ${{ params.y }}", "ok"),
    (
        "[[ ${{ params.y }} == \"$TUNA_PARAM_Y\" ]] && printf same",
        "same",
    ),
    (
        "case ${{ params.y }} in \"$TUNA_PARAM_Y\") printf same;; esac",
        "same",
    ),
    (
        "for a in ${{ params.y }}; do printf '%s|' \"$a\"; done",
        "{v}|",
    ),
    ("f() { printf %s \"$1\"; }; f ${{ params.y }}", "{v}"),
    ("printf %s \"$TUNA_PARAM_Y\"", "{v}"),
];

fn hostile(marker: &str) -> Vec<String> {
    let m = marker;
    vec![
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("'; touch {m}; '"),
        format!("'$(touch {m})'"),
        format!("\"; touch {m}; \""),
        format!("\"$(touch {m})\""),
        format!("\\'; touch {m} #"),
        format!("\\\"; touch {m} #"),
        format!("x\ntouch {m}\n"),
        format!("EOF\ntouch {m}\nEOF"),
        format!("\tEOF\ntouch {m}"),
        format!("; touch {m}"),
        format!("$'\\x27'; touch {m}"),
        "\\".into(),
        "\\\\n".into(),
        "'".into(),
        "\"".into(),
        "$HOME ${PATH} $1 $@ $# !! !x".into(),
        "* ? [a] {a,b} ~ ~root".into(),
        "a\n\n".into(),
        "\n".into(),
        "-n".into(),
        "%s %%".into(),
        "if".into(),
        "é ✓ \u{200b}".into(),
        String::new(),
    ]
}

#[test]
fn hostile_values_arrive_byte_for_byte_in_every_context() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    for (script, expect) in CONTEXTS {
        let t = Template::parse(script).unwrap();
        for v in hostile(&marker.display().to_string()) {
            let rendered = t.render_script(|_| v.clone()).unwrap();
            let out = std::process::Command::new("bash")
                .args(["-euo", "pipefail", "-c", &rendered])
                .env("TUNA_PARAM_Y", &v)
                .current_dir(dir.path())
                .output()
                .unwrap();
            let got = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{script:?} with {v:?} → {rendered:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                got,
                expect.replace("{v}", &v),
                "{script:?} with {v:?} → {rendered:?}"
            );
            assert!(!marker.exists(), "{script:?} with {v:?} ran a command");
        }
    }
}

#[test]
fn non_param_values_in_a_heredoc_go_through_printf() {
    let t = Template::parse("cat <<EOF\n${{ steps.a.outputs.x }} ${{ run.id }}\nEOF").unwrap();
    let r = t
        .render_script(|r| match r {
            Ref::RunId => "r1".into(),
            _ => "/o/it's $x".into(),
        })
        .unwrap();
    assert_eq!(
        r,
        "cat <<EOF\n$(printf %s '/o/it'\\''s $x') ${TUNA_RUN_ID}\nEOF"
    );
    let err = t.render_script(|_| "a\nb".into()).unwrap_err();
    assert!(err.contains("line break"), "{err}");
}
