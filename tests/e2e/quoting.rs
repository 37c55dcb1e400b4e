//! Params with hostile values reach `run:` scripts byte for byte in every shell context, through
//! `-p` and the real binary, and run nothing; placements bash would read as code are refused by
//! `tuna validate` at file:line:col.

use tuna_tests::Project;

/// Shell contexts: the script (with `{P}` for the reference, `{N}` for the value's index) and
/// what it writes for value `v` (`{v}`).
const CONTEXTS: &[(&str, &str, &str)] = &[
    (
        "bare",
        "printf %s {P} > \"$TUNA_PROJECT_DIR/out/bare-{N}\"",
        "{v}",
    ),
    (
        "double",
        "printf %s \"<{P}>\" > \"$TUNA_PROJECT_DIR/out/double-{N}\"",
        "<{v}>",
    ),
    (
        "single",
        "printf %s '<{P}>' > \"$TUNA_PROJECT_DIR/out/single-{N}\"",
        "<{v}>",
    ),
    (
        "ansi",
        "printf %s $'<{P}>' > \"$TUNA_PROJECT_DIR/out/ansi-{N}\"",
        "<{v}>",
    ),
    (
        "assign",
        "x={P}\nprintf %s \"$x\" > \"$TUNA_PROJECT_DIR/out/assign-{N}\"",
        "{v}",
    ),
    (
        "comsub",
        "x=\"$(printf %s \"{P}\"; echo .)\"\nprintf %s \"${x%.}\" > \"$TUNA_PROJECT_DIR/out/comsub-{N}\"",
        "{v}",
    ),
    (
        "heredoc",
        "cat > \"$TUNA_PROJECT_DIR/out/heredoc-{N}\" <<EOF\n'{P}' \"{P}\"\nEOF",
        "'{v}' \"{v}\"\n",
    ),
    (
        "env",
        "printf %s \"$TUNA_PARAM_V{N}\" > \"$TUNA_PROJECT_DIR/out/env-{N}\"",
        "{v}",
    ),
];

fn hostile(marker: &str) -> Vec<String> {
    let m = marker;
    vec![
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("'; touch {m}; '"),
        format!("\"; touch {m}; \""),
        format!("\\'\"; touch {m} #"),
        format!("x\ntouch {m}\nEOF\ntouch {m}"),
        format!("; touch {m} & touch {m} | touch {m}"),
        "$HOME ${PATH} !! !x".into(),
        "* ? [a] {a,b} ~".into(),
        "\\".into(),
        "a\n\n".into(),
        String::new(),
    ]
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}\n")).collect()
}

#[test]
fn hostile_params_arrive_byte_for_byte_in_every_shell_context() {
    let p = Project::new();
    let marker = p.path("pwned").display().to_string();
    let values = hostile(&marker);
    let mut yaml = String::from("name: quoting\nparams:\n");
    for i in 0..values.len() {
        yaml.push_str(&format!("  v{i}: \"\"\n"));
    }
    yaml.push_str("steps:\n");
    // One step per context, one command per value.
    for (name, script, _) in CONTEXTS {
        let run: Vec<String> = (0..values.len())
            .map(|i| {
                script
                    .replace("{P}", &format!("${{{{ params.v{i} }}}}"))
                    .replace("{N}", &i.to_string())
            })
            .collect();
        yaml.push_str(&format!(
            "  {name}:\n    run: |\n{}",
            indent(&run.join("\n"))
        ));
    }
    p.file("wf.yaml", &yaml);
    std::fs::create_dir_all(p.path("out")).unwrap();
    let mut args = vec!["run".to_string(), "wf.yaml".into()];
    for (i, v) in values.iter().enumerate() {
        args.push("-p".into());
        args.push(format!("v{i}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    p.run(&args).ok();
    for (name, _, expect) in CONTEXTS {
        for (i, v) in values.iter().enumerate() {
            let got = std::fs::read(p.path(&format!("out/{name}-{i}"))).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                expect.replace("{v}", v),
                "context {name}, value {v:?}"
            );
        }
    }
    assert!(!p.path("pwned").exists(), "a value ran as a command");
}

#[test]
fn a_placement_bash_would_read_as_code_is_refused_with_its_place_and_the_env_variable() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: q\nparams:\n  base-model: m\nsteps:\n  a:\n    run: echo \"${x:-${{ params.base-model }}}\"\n",
    );
    let r = p.run(&["validate", "wf.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("wf.yaml:6:21"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot be quoted"), "{}", r.stderr);
    assert!(
        r.stderr.contains("\"$TUNA_PARAM_BASE_MODEL\""),
        "{}",
        r.stderr
    );
    // The safe way runs, with the value from the environment.
    p.file(
        "wf.yaml",
        "name: q\nparams:\n  base-model: m\nsteps:\n  a:\n    run: printf %s \"${x:-$TUNA_PARAM_BASE_MODEL}\" > \"$TUNA_PROJECT_DIR/o\"\n",
    );
    p.run(&["run", "wf.yaml", "-p", "base-model=$(id)"]).ok();
    assert_eq!(p.read("o"), "$(id)");
}
