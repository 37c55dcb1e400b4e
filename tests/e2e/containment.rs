//! What a step leaves cannot reach past tuna's folders: an output that is a symbolic link to a
//! file elsewhere fails its step and leaves the file as it was; a link inside the step's folder
//! is stored as a copy; a blob damaged after the fact is caught by `tuna pull` and the step runs
//! again; a relative `with:` path that leaves the project is refused before anything runs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tuna_tests::Project;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every blob of the home's store.
fn objects(p: &Project) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in fs::read_dir(p.home().join("cas/objects")).unwrap() {
        for o in fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(o.unwrap().path());
        }
    }
    out
}

#[test]
fn an_output_linking_outside_fails_the_step_and_leaves_its_target_alone() {
    let p = Project::new();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    fs::write(&secret, "v1").unwrap();
    fs::create_dir_all(outside.path().join("models")).unwrap();
    fs::write(outside.path().join("models/w.bin"), "weights").unwrap();
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: links
steps:
  file:
    run: ln -s {secret} out.txt
    outputs: [out.txt]
  folder:
    run: mkdir adapter && echo '{{}}' > adapter/config.json && ln -s {models} adapter/base
    outputs: [adapter/]
"#,
            secret = secret.display(),
            models = outside.path().join("models").display()
        ),
    );
    let r = p.run(&["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let st = p.status(&r.run_id());
    for s in st["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "failed", "{st}");
        let msg = s["message"].as_str().unwrap();
        assert!(msg.contains("outside the step's folder"), "{msg}");
    }
    assert_eq!(mode(&secret), 0o644);
    assert_eq!(mode(&outside.path().join("models/w.bin")), 0o644);
    for o in objects(&p) {
        assert!(o.symlink_metadata().unwrap().is_file(), "{}", o.display());
        assert_ne!(fs::read(&o).unwrap(), b"v1");
    }
}

#[test]
fn a_link_inside_the_step_is_copied_and_a_damaged_blob_is_caught_on_pull() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"
name: inside
steps:
  make:
    run: echo fresh-content > real.txt && ln -s real.txt out.txt
    outputs: [out.txt]
"#,
    );
    let r = p.run(&["run", "wf.yaml"]).ok();
    let id = r.run_id();
    p.run(&["pull", &id, "make", "--to", "pulled"]).ok();
    assert_eq!(p.read("pulled/out.txt"), "fresh-content\n");
    // Damage the blob in place, keeping its size: only a hash sees it.
    let object = objects(&p)
        .into_iter()
        .find(|o| fs::read(o).unwrap() == b"fresh-content\n")
        .expect("the output's blob");
    fs::set_permissions(&object, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&object, "FRESH-CONTENT\n").unwrap();
    let pulled = p.run(&["pull", &id, "make", "--to", "again"]);
    // A damaged store is tuna's trouble (3), not bad input (2).
    assert_eq!(pulled.code, 3, "{}", pulled.stderr);
    assert!(pulled.stderr.contains("damaged"), "{}", pulled.stderr);
    let nosuch = p.run(&["pull", &id, "nosuch", "--to", "x"]);
    assert_eq!(nosuch.code, 2, "{}", nosuch.stderr);
    assert!(
        nosuch
            .stderr
            .contains(&format!("run `{id}` has no step `nosuch`")),
        "{}",
        nosuch.stderr
    );
    // The damaged blob left the store: the step is no longer a cache hit and runs again.
    let plan = p.run(&["plan", "wf.yaml"]).ok();
    assert!(
        plan.stdout.contains("0 of 1 steps cached"),
        "{}",
        plan.stdout
    );
    let again = p.run(&["run", "wf.yaml"]).ok();
    let st = p.status(&again.run_id());
    assert_eq!(st["steps"][0]["status"], "passed", "{st}");
    p.run(&["pull", &again.run_id(), "make", "--to", "third"])
        .ok();
    assert_eq!(p.read("third/out.txt"), "fresh-content\n");
}

#[test]
fn a_relative_with_path_cannot_leave_the_project() {
    let p = Project::new();
    p.file("tok/vocab.json", "{}");
    p.file(
        "wf.yaml",
        "name: esc\nsteps:\n  prep:\n    uses: data.prepare\n    with:\n      input: ../../../etc/passwd\n      tokenizer: tok/\n",
    );
    let r = p.run(&["validate", "wf.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("wf.yaml:6:14"), "{}", r.stderr);
    assert!(
        r.stderr.contains("must stay inside the project folder"),
        "{}",
        r.stderr
    );
    // Through a param, the run's value is checked before anything runs.
    p.file(
        "wf2.yaml",
        "name: esc\nparams:\n  data: data.jsonl\nsteps:\n  prep:\n    uses: data.prepare\n    with:\n      input: ${{ params.data }}\n      tokenizer: tok/\n",
    );
    p.file("data.jsonl", "{\"text\": \"hi\"}\n");
    let r = p.run(&["run", "wf2.yaml", "-p", "data=../../etc/passwd"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("must stay inside"), "{}", r.stderr);
    let runs = p.home().join("runs");
    assert!(
        !runs.exists() || fs::read_dir(&runs).unwrap().next().is_none(),
        "nothing ran"
    );
    // An absolute path stays allowed and explicit.
    p.file(
        "wf3.yaml",
        "name: abs\nsteps:\n  prep:\n    uses: data.prepare\n    with:\n      input: /etc/hostname\n      tokenizer: tok/\n",
    );
    p.run(&["validate", "wf3.yaml"]).ok();
}

#[test]
fn the_home_is_private_to_its_owner() {
    let p = Project::new();
    p.file("wf.yaml", "name: h\nsteps:\n  a: { run: echo hi }\n");
    p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(mode(&p.home()), 0o700);
    // A home made by hand with loose permissions is tightened on the next open.
    fs::set_permissions(p.home(), fs::Permissions::from_mode(0o755)).unwrap();
    p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(mode(&p.home()), 0o700);
}
