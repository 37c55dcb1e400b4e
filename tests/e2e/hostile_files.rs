//! Workflow files built to hurt the loader — a key longer than 65,535 columns, nesting
//! 100,000 deep, one 100 KB string aliased 100,000 times, a file over the size limit — get a
//! clear error at their position from the real `tuna validate` (exit 2), never a panic or an
//! exhausted machine.

use tuna_tests::Project;

fn validate(p: &Project, text: &str) -> tuna_tests::Run {
    p.file("wf.yaml", text);
    p.run(&["validate", "wf.yaml"])
}

#[test]
fn an_error_past_column_65535_is_reported_not_a_panic() {
    let p = Project::new();
    let key = "k".repeat(70_000);
    let r = validate(
        &p,
        &format!("name: x\nsteps:\n  a:\n    run: echo\n    {key}: 1\n"),
    );
    assert_eq!(r.code, 2, "{}", &r.stderr[..r.stderr.len().min(2000)]);
    assert!(r.stderr.contains("wf.yaml:5:70005"), "{}", r.stderr.len());
    assert!(
        r.stderr.lines().all(|l| l.chars().count() < 300),
        "long lines are clipped"
    );
    // A long value with an error after it: the long line is clipped around the caret.
    let r = validate(
        &p,
        &format!("name: x\nsteps:\n  a:\n    run: echo {key}\n    neds: [b]\n"),
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown key `neds`"), "{}", r.stderr);
    assert!(r.stderr.lines().all(|l| l.chars().count() < 300));
}

#[test]
fn deep_nesting_is_refused_at_the_limit() {
    let p = Project::new();
    let n = 100_000;
    let text = format!(
        "name: x\nsteps:\n  a:\n    run: echo\n    env: {{A: {}{}}}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    let r = validate(&p, &text);
    assert_eq!(r.code, 2, "{}", &r.stderr[..r.stderr.len().min(2000)]);
    assert!(
        r.stderr.contains("nest deeper than 64 levels"),
        "{}",
        r.stderr.len()
    );
    // Block nesting too.
    let mut text = String::from("name: x\nsteps:\n  a:\n    run: echo\n    with:\n");
    for depth in 0..80 {
        text.push_str(&format!("{}k{depth}:\n", " ".repeat(6 + 2 * depth)));
    }
    let r = validate(&p, &text);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nest deeper"), "{}", r.stderr);
}

#[test]
fn aliases_are_budgeted_by_bytes_and_files_by_size() {
    let p = Project::new();
    let big = "x".repeat(100_000);
    let copies = "*a,".repeat(100_000);
    let r = validate(
        &p,
        &format!("name: x\nparams:\n  a: &a {big}\n  b: [{copies}]\nsteps:\n  s: {{run: echo}}\n"),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("aliases copy too much"), "{}", r.stderr);
    // A billion laughs: nodes, not bytes.
    let mut text = String::from("name: x\nparams:\n  l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..9 {
        let prev = format!("*l{}, ", i - 1).repeat(10);
        text.push_str(&format!("  l{i}: &l{i} [{prev}]\n"));
    }
    text.push_str("steps:\n  s: {run: echo}\n");
    let r = validate(&p, &text);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("aliases copy too much"), "{}", r.stderr);
    let r = validate(&p, &format!("# {}\nname: x\n", "x".repeat(1_100_000)));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("a workflow file may have at most 1048576"),
        "{}",
        r.stderr
    );
}
