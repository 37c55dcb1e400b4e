//! Secrets: declared with their source in `secrets:`, read when the run starts, given only to
//! the steps that list them, masked in logs, and never stored (records, cache, status). The
//! daemon gives steps only secrets from variables it passes (`--pass-env`), never files.

use std::path::Path;
use std::time::Duration;

use tuna_tests::{Project, wait_until};

use crate::daemon_harness::{Serve, TOKEN};

const VALUE: &str = "s3cr3t-value-123";
const FILE_VALUE: &str = "file-secret-456";

fn workflow(p: &Project) {
    p.file("keyfile", &format!("{FILE_VALUE}\n"));
    p.file(
        "wf.yaml",
        &format!(
            r#"name: sec
secrets:
  API_KEY: {{ env: MY_API_KEY }}
  FILE_KEY: {{ file: {keyfile} }}
steps:
  use:
    secrets: [API_KEY, FILE_KEY]
    run: |
      echo "key=$API_KEY file=$FILE_KEY"
      echo "to stderr: $API_KEY" >&2
      printf '%s' "$FILE_KEY" > got-file.txt
    outputs: [got-file.txt]
  other:
    run: echo "other sees ${{API_KEY:-nothing}}"
"#,
            keyfile = p.path("keyfile").display()
        ),
    );
}

/// Every file under `dir`, but the steps' own work folders.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if e.file_type().unwrap().is_dir() {
            if path.file_name().is_some_and(|n| n == "work") {
                continue;
            }
            out.extend(files(&path));
        } else if e.file_type().unwrap().is_file() {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_secret_reaches_only_its_step_masked_in_logs_and_never_stored() {
    let p = Project::new();
    workflow(&p);
    let out = p
        .tuna()
        .env("MY_API_KEY", VALUE)
        .args(["run", "wf.yaml"])
        .output()
        .unwrap();
    let r = tuna_tests::Run::from(out).ok();
    let id = r.run_id();
    let log = p.run(&["logs", &id, "use"]).ok();
    assert!(log.stdout.contains("key=*** file=***"), "{}", log.stdout);
    assert!(!log.stdout.contains(VALUE) && !log.stdout.contains(FILE_VALUE));
    let err = p.run(&["logs", &id, "use", "--stderr"]);
    assert!(!err.stdout.contains(VALUE), "{}", err.stdout);
    let other = p.run(&["logs", &id, "other"]).ok();
    assert!(
        other.stdout.contains("other sees nothing"),
        "{}",
        other.stdout
    );
    p.run(&["pull", &id, "use", "--to", "pulled"]).ok();
    assert_eq!(p.read("pulled/got-file.txt"), FILE_VALUE);
    // Nowhere in the store, the records or what status shows (the step's declared output
    // holds the file secret because the step wrote it there, so the CAS is not searched
    // for that one).
    let status = p.run(&["status", &id, "--json"]).ok();
    assert!(!status.stdout.contains(VALUE), "{}", status.stdout);
    for f in files(&p.home()) {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(VALUE), "{} holds the secret", f.display());
        if !f.starts_with(p.home().join("cas")) {
            assert!(
                !text.contains(FILE_VALUE),
                "{} holds the secret",
                f.display()
            );
        }
    }
}

#[test]
fn a_missing_secret_stops_the_run_before_anything_runs() {
    let p = Project::new();
    workflow(&p);
    let r = p
        .tuna()
        .env_remove("MY_API_KEY")
        .args(["run", "wf.yaml"])
        .output()
        .unwrap();
    let r = tuna_tests::Run::from(r);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("secret `API_KEY`") && r.stderr.contains("MY_API_KEY"),
        "{}",
        r.stderr
    );
    assert!(!p.home().join("runs").exists(), "nothing ran");
    // Declared wrong: at its place.
    p.file(
        "bad.yaml",
        "name: bad\nsecrets:\n  TUNA_X: { env: A }\n  OK: { env: TUNA_SERVE_TOKENS }\nsteps:\n  a:\n    secrets: [OK, NOPE]\n    run: echo\n  b:\n    run: echo ${{ secrets.OK }}\n",
    );
    let v = p.run(&["validate", "bad.yaml"]);
    assert_eq!(v.code, 2);
    assert!(v.stderr.contains("bad.yaml:3:3"), "{}", v.stderr);
    assert!(v.stderr.contains("tuna's own variable"), "{}", v.stderr);
    assert!(v.stderr.contains("unknown secret `NOPE`"), "{}", v.stderr);
    assert!(
        v.stderr.contains("never written into a command"),
        "{}",
        v.stderr
    );
}

#[test]
fn the_daemon_gives_secrets_only_from_variables_it_passes() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "name: dsec\nsecrets:\n  API_KEY: { env: MY_API_KEY }\nsteps:\n  use:\n    secrets: [API_KEY]\n    run: echo \"key=$API_KEY\"\n",
    );
    let closed = Serve::start(&p, &[("MY_API_KEY", VALUE)]);
    let refused = closed.tuna(&p, &["submit", "wf.yaml"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("--pass-env MY_API_KEY"),
        "{}",
        refused.stderr
    );
    drop(closed);
    let p2 = Project::new();
    p2.file("wf.yaml", &p.read("wf.yaml"));
    let open = Serve::start_with(&p2, &[("MY_API_KEY", VALUE)], &["--pass-env", "MY_API_KEY"]);
    let id = open.tuna(&p2, &["submit", "wf.yaml"]).ok().run_id();
    wait_until(Duration::from_secs(60), "the run to pass", || {
        open.run_status(&id) == "passed"
    });
    let (code, log) = open.http(
        "GET",
        &format!("/api/v1/runs/{id}/steps/use/log"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 200);
    assert!(log.contains("key=***") && !log.contains(VALUE), "{log}");
}
