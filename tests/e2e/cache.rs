//! Caching: unchanged steps never rerun; a changed input file, param or upstream output reruns
//! exactly the affected steps, and `tuna plan` says why.

use tuna_tests::Project;

const WF: &str = r#"
name: cache-test
params:
  greeting: hello
steps:
  a:
    run: head -n 1 input.txt > a.txt; echo ran >> "$TUNA_PROJECT_DIR/ran-a"
    inputs: [input.txt]
    outputs: [a.txt]
  b:
    run: echo ${{ params.greeting }} > b.txt; echo ran >> "$TUNA_PROJECT_DIR/ran-b"
    outputs: [b.txt]
  c:
    run: cat ${{ steps.a.outputs.a.txt }} ${{ steps.b.outputs.b.txt }} > c.txt; echo ran >> "$TUNA_PROJECT_DIR/ran-c"
    outputs: [c.txt]
  d:
    needs: [b]
    run: echo ran >> "$TUNA_PROJECT_DIR/ran-d"
"#;

fn counts(p: &Project) -> [usize; 4] {
    ["a", "b", "c", "d"].map(|s| p.read(&format!("ran-{s}")).lines().count())
}

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WF)
        .file("input.txt", "line one\nline two\n");
    p
}

#[test]
fn rerun_is_all_cached_and_outputs_flow_downstream() {
    let p = project();
    let r = p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(counts(&p), [1, 1, 1, 1]);
    let run1 = r.run_id();
    let c_out = p.status(&run1)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "c")
        .unwrap()
        .clone();
    assert!(
        c_out["outputs"]["c.txt"].is_string(),
        "c.txt collected: {c_out}"
    );
    let r2 = p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(counts(&p), [1, 1, 1, 1], "nothing reran");
    let statuses = p.step_statuses(&r2.run_id());
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
    let plan = p.run(&["plan", "wf.yaml"]).ok();
    assert!(
        plan.stdout.contains("4 of 4 steps cached"),
        "{}",
        plan.stdout
    );
}

#[test]
fn changed_input_reruns_only_affected_steps() {
    let p = project();
    p.run(&["run", "wf.yaml"]).ok();
    p.file("input.txt", "line ONE\nline two\n");
    let plan = p.run(&["plan", "wf.yaml"]).ok();
    assert!(
        plan.stdout.contains("input `input.txt` changed"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("upstream step `a` runs"),
        "{}",
        plan.stdout
    );
    p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(counts(&p), [2, 1, 2, 1]);
}

#[test]
fn unchanged_upstream_output_stops_the_rerun() {
    let p = project();
    p.run(&["run", "wf.yaml"]).ok();
    // a reads only the first line: a reruns, its output is the same, c stays cached.
    p.file("input.txt", "line one\nline TWO\n");
    let r = p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(counts(&p), [2, 1, 1, 1]);
    assert_eq!(p.step_status(&r.run_id(), "c"), "cached");
}

#[test]
fn changed_param_reruns_its_step_and_dependents() {
    let p = project();
    p.run(&["run", "wf.yaml"]).ok();
    let plan = p.run(&["plan", "wf.yaml", "-p", "greeting=bonjour"]).ok();
    assert!(
        plan.stdout
            .contains("param `greeting` changed: hello → bonjour"),
        "{}",
        plan.stdout
    );
    p.run(&["run", "wf.yaml", "-p", "greeting=bonjour"]).ok();
    // b's output changed, so c (reads it) and d (needs b) rerun; a does not.
    assert_eq!(counts(&p), [1, 2, 2, 2]);
    p.run(&["run", "wf.yaml", "-p", "greeting=bonjour"]).ok();
    assert_eq!(
        counts(&p),
        [1, 2, 2, 2],
        "the new param value is cached too"
    );
}

#[test]
fn no_cache_runs_everything_and_plan_says_never_run() {
    let p = project();
    let plan = p.run(&["plan", "wf.yaml"]).ok();
    assert!(plan.stdout.contains("never run"), "{}", plan.stdout);
    p.run(&["run", "wf.yaml"]).ok();
    p.run(&["run", "wf.yaml", "--no-cache"]).ok();
    assert_eq!(counts(&p), [2, 2, 2, 2]);
}

#[test]
fn a_param_never_injects_shell_syntax() {
    let p = Project::new();
    let pwned = p.path("pwned");
    p.file(
        "wf.yaml",
        "name: quote\nparams:\n  msg: x\nsteps:\n  s:\n    run: printf '%s' ${{ params.msg }} > out.txt\n    outputs: [out.txt]\n",
    );
    let evil = format!("'; touch {} #", pwned.display());
    let r = p
        .run(&["run", "wf.yaml", "-p", &format!("msg={evil}")])
        .ok();
    assert!(!pwned.exists(), "the parameter ran as shell code");
    let st = p.status(&r.run_id());
    let dir = st["steps"][0]["stdout"]
        .as_str()
        .unwrap()
        .replace("stdout.log", "work/out.txt");
    assert_eq!(std::fs::read_to_string(dir).unwrap(), evil);
}

#[test]
fn a_step_naming_its_run_reruns_every_run() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: per-run\nsteps:\n  stamp:\n    run: echo ${{ run.id }} >> \"$TUNA_PROJECT_DIR/stamps\"\n  plain:\n    run: echo x >> \"$TUNA_PROJECT_DIR/plain\"\n",
    );
    let one = p.run(&["run", "wf.yaml"]).ok().run_id();
    let two = p.run(&["run", "wf.yaml"]).ok().run_id();
    assert_eq!(p.read("stamps"), format!("{one}\n{two}\n"));
    assert_eq!(
        p.read("plain").lines().count(),
        1,
        "the step that does not name its run is cached"
    );
}

#[test]
fn status_says_why_each_step_ran() {
    let p = project();
    let first = p.run(&["run", "wf.yaml"]).ok().run_id();
    let reasons = |run: &str, step: &str| -> Vec<String> {
        p.status(run)["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == step)
            .unwrap()["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(reasons(&first, "a"), ["never run"]);
    p.file("input.txt", "line ONE\nline two\n");
    let second = p
        .run(&["run", "wf.yaml", "-p", "greeting=hi"])
        .ok()
        .run_id();
    assert_eq!(reasons(&second, "a"), ["input `input.txt` changed"]);
    assert!(
        reasons(&second, "b")
            .iter()
            .any(|r| r.contains("param `greeting`")),
        "{:?}",
        reasons(&second, "b")
    );
    // A cache hit has no reasons; the table says why the others ran.
    let third = p
        .run(&["run", "wf.yaml", "-p", "greeting=hi"])
        .ok()
        .run_id();
    assert!(reasons(&third, "a").is_empty());
    let table = p.run(&["status", &second]).ok();
    assert!(
        table.stdout.contains("ran: input `input.txt` changed"),
        "{}",
        table.stdout
    );
}
