//! The file commands: validate (diagnostics at file:line:col, exit 2), graph, schema.

use tuna_tests::{Project, workspace_root};

#[test]
fn validate_reports_every_error_with_positions() {
    let p = Project::new();
    p.file(
        "bad.yaml",
        "name: bad\nsteps:\n  a:\n    run: echo a\n    neds: [b]\n  b:\n    needs: [zzz]\n    run: echo b\n",
    );
    let r = p.run(&["validate", "bad.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.yaml:5:5"),
        "unknown key position: {}",
        r.stderr
    );
    assert!(r.stderr.contains("needs"), "did-you-mean: {}", r.stderr);
    assert!(
        r.stderr.contains("bad.yaml:7:"),
        "unknown need position: {}",
        r.stderr
    );
}

#[test]
fn validate_accepts_every_shipped_workflow() {
    let p = Project::new();
    let dir = workspace_root().join("workflows");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    files.sort();
    // Runner inventories beside the workflows (runners-*.yaml) load as inventories.
    let (inventories, files): (Vec<String>, Vec<String>) = files.into_iter().partition(|f| {
        f.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("runners-"))
    });
    assert!(!inventories.is_empty());
    for inv in &inventories {
        let r = p.run(&["--runners", inv, "runners", "check", "--json"]);
        assert!(
            !r.stderr.contains("runner inventory"),
            "{inv}: {}",
            r.stderr
        );
        let checks: serde_json::Value = serde_json::from_str(&r.stdout).expect("check json");
        assert!(
            checks.as_array().is_some_and(|a| a.len() >= 2),
            "{inv}: {checks}"
        );
    }
    assert!(files.len() >= 2);
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let r = p.run(&args).ok();
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        files.len()
    );
}

#[test]
fn a_cycle_is_reported_with_its_path() {
    let p = Project::new();
    p.file(
        "cycle.yaml",
        "name: cycle\nsteps:\n  a:\n    needs: [c]\n    run: echo\n  b:\n    needs: [a]\n    run: echo\n  c:\n    needs: [b]\n    run: echo\n",
    );
    let r = p.run(&["validate", "cycle.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains('→'), "{}", r.stderr);
    assert!(r.stderr.contains("cycle"), "{}", r.stderr);
}

#[test]
fn graph_prints_ascii_dot_and_mermaid() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: g\nsteps:\n  prep:\n    run: echo\n  train:\n    needs: [prep]\n    run: echo\n",
    );
    let dot = p.run(&["graph", "wf.yaml", "--format", "dot"]).ok();
    assert!(
        dot.stdout.contains("digraph") && dot.stdout.contains("prep") && dot.stdout.contains("->"),
        "{}",
        dot.stdout
    );
    let mm = p.run(&["graph", "wf.yaml", "--format", "mermaid"]).ok();
    assert!(
        mm.stdout.contains("prep") && mm.stdout.contains("-->"),
        "{}",
        mm.stdout
    );
    let ascii = p.run(&["graph", "wf.yaml"]).ok();
    assert!(ascii.stdout.contains("train"), "{}", ascii.stdout);
}

#[test]
fn schema_is_json_schema() {
    let p = Project::new();
    let r = p.run(&["schema"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"));
    assert!(v.to_string().contains("runs-on"));
}

#[test]
fn the_home_is_found_from_the_current_folder_at_the_top_of_the_work_tree() {
    let p = Project::new();
    std::fs::create_dir(p.path(".git")).unwrap();
    p.file(
        "workflows/hello.yaml",
        "name: hello\nsteps:\n  a:\n    run: echo hi > a.txt\n    outputs: [a.txt]\n",
    );
    // From a folder inside the work tree, with no TUNA_HOME: the store goes to the top.
    let r = p
        .tuna()
        .env_remove("TUNA_HOME")
        .current_dir(p.path("workflows"))
        .args(["run", "hello.yaml"])
        .output()
        .unwrap();
    let r = tuna_tests::Run::from(r).ok();
    let home = p.path(".tuna");
    assert!(
        home.join("db").is_dir(),
        "no store at the top: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("tuna home: {} (made now)", home.display())),
        "where the home is: {}",
        r.stderr
    );
    // The next command, typed at the top, finds the same run.
    let s = p
        .tuna()
        .env_remove("TUNA_HOME")
        .args(["status", "last"])
        .output()
        .unwrap();
    let s = tuna_tests::Run::from(s).ok();
    assert!(s.stdout.contains(&r.run_id()), "{}", s.stdout);
}

#[test]
fn a_reader_that_goes_away_ends_a_printing_command_without_a_panic() {
    let p = Project::new();
    let mut yaml = String::from("name: many\nsteps:\n");
    for i in 0..300 {
        yaml.push_str(&format!("  s{i}:\n    run: \"true\"\n"));
    }
    p.file("many.yaml", &yaml);
    p.run(&["run", "many.yaml"]).ok();
    let out = p
        .tuna()
        .args(["status", "last"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once: tuna's writes then meet a closed pipe.
    let mut out = out;
    drop(out.stdout.take());
    let o = out.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_run_ends_with_its_results_and_the_next_commands() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"name: shows
steps:
  train:
    run: |
      echo '{"loss_first": 3.2145, "loss_last": 1.8712, "projected_hours_a100": 0.42}' > "$TUNA_METRICS"
      mkdir adapter && echo w > adapter/w.bin
    outputs: [adapter/]
  eval:
    needs: [train]
    run: |
      echo '{"exact_match": 0.31}' > "$TUNA_METRICS"
"#,
    );
    let r = p.run(&["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let tail = r.stderr.split("results:\n").nth(1).unwrap_or_default();
    assert!(tail.contains("loss 3.215 → 1.871"), "{}", r.stderr);
    assert!(tail.contains("projected_hours_a100 0.42"), "{}", r.stderr);
    assert!(tail.contains("exact_match 0.31"), "{}", r.stderr);
    assert!(
        tail.contains(&format!(
            "adapter/ in {}",
            p.home()
                .join("runs")
                .join(&id)
                .join("train/1/work")
                .display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        tail.contains(&format!("next: tuna status {id}"))
            && tail.contains(&format!("tuna pull {id} train")),
        "{}",
        r.stderr
    );
    // `--progress quiet`, by hand: the harness's command already says `--progress plain`.
    let mut quiet = std::process::Command::new(tuna_tests::tuna_bin());
    quiet
        .current_dir(p.root())
        .env("TUNA_HOME", p.home())
        .env_remove("TUNA_RUNNERS")
        .args(["--progress", "quiet", "run", "wf.yaml"]);
    let quiet = tuna_tests::Run::from(quiet.output().unwrap()).ok();
    assert!(!quiet.stderr.contains("results:"), "{}", quiet.stderr);
}
