//! Attempt folders: a step gets one of its own only when it declares outputs or inputs (or is
//! a built-in kind); the others run in the run's shared folder and their attempt folder is
//! made only when something goes in it. While every slot is taken, the dispatcher makes the
//! folder of the next step to launch (one per slot ahead, no more), so its launch does not
//! wait on it.

use std::path::PathBuf;
use std::time::Duration;

use tuna_tests::{Project, wait_until};

const AHEAD: &str = r#"name: ahead
steps:
  a:
    run: while [ ! -e "$TUNA_PROJECT_DIR/gate" ]; do sleep 0.01; done; touch done
    outputs: [done]
  b:
    run: echo b >> "$TUNA_PROJECT_DIR/lines"; touch done
    outputs: [done]
  c:
    run: echo c >> "$TUNA_PROJECT_DIR/lines"; touch done
    outputs: [done]
  d:
    run: echo d >> "$TUNA_PROJECT_DIR/lines"; touch done
    outputs: [done]
"#;

fn attempt_dir(p: &Project, step: &str) -> Option<PathBuf> {
    let runs = std::fs::read_dir(p.home().join("runs")).ok()?;
    runs.flatten()
        .map(|e| e.path().join(step).join("1"))
        .find(|d| d.exists())
}

#[test]
fn the_next_steps_folder_is_made_while_the_slots_are_taken_and_only_one_per_slot() {
    let p = Project::new();
    p.file("wf.yaml", AHEAD);
    let mut tuna = p.spawn(&["run", "wf.yaml", "-j", "1"]);
    wait_until(
        Duration::from_secs(30),
        "a runs and b's folder is made ahead",
        || {
            attempt_dir(&p, "a").is_some()
                && attempt_dir(&p, "b").is_some_and(|d| d.join("work").is_dir())
        },
    );
    assert!(
        !p.path("lines").exists(),
        "b has not started: a holds the slot"
    );
    assert!(
        attempt_dir(&p, "c").is_none() && attempt_dir(&p, "d").is_none(),
        "one folder ahead for one slot"
    );
    p.file("gate", "");
    assert!(tuna.wait().unwrap().success());
    let mut lines: Vec<String> = p.read("lines").lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["b", "c", "d"], "each ran once");
}

const SHARED: &str = r#"name: shared
steps:
  quiet:
    run: |
      pwd > "$TUNA_PROJECT_DIR/quiet.pwd"
      echo "$TUNA_OUTPUTS" > "$TUNA_PROJECT_DIR/quiet.outputs"
      echo '{"score": 4}' > "$TUNA_METRICS"
      echo '{"done": 1}' > "$TUNA_PROGRESS"
    gate: score >= 3
  loud:
    needs: [quiet]
    run: |
      pwd > "$TUNA_PROJECT_DIR/loud.pwd"
      echo hello; echo oops >&2
  own:
    run: pwd > "$TUNA_PROJECT_DIR/own.pwd"; echo x > out.txt
    outputs: [out.txt]
"#;

#[test]
fn a_step_without_outputs_or_inputs_runs_in_the_runs_shared_folder_and_makes_no_folder_unless_it_prints()
 {
    let p = Project::new();
    p.file("wf.yaml", SHARED);
    let r = p.run(&["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let run_dir = p.home().join("runs").join(&id);
    let shared = run_dir.join(".work");
    let pwd = |name: &str| PathBuf::from(p.read(name).trim());
    assert_eq!(pwd("quiet.pwd"), shared.canonicalize().unwrap());
    assert_eq!(PathBuf::from(p.read("quiet.outputs").trim()), shared);
    assert!(
        !run_dir.join("quiet").exists(),
        "a step that writes no log has no attempt folder"
    );
    // Its metrics reached the gate and the record.
    let status = p.status(&id);
    let quiet = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "quiet")
        .unwrap();
    assert_eq!(quiet["metrics"]["score"], 4.0, "{quiet}");
    // A step that prints gets its attempt folder for its logs, and tuna logs shows them.
    assert_eq!(pwd("loud.pwd"), shared.canonicalize().unwrap());
    assert!(run_dir.join("loud/1/stdout.log").is_file());
    assert!(!run_dir.join("loud/1/work").exists());
    let logs = p.run(&["logs", &id, "loud"]).ok();
    assert!(logs.stdout.contains("hello"), "{}", logs.stdout);
    // A step with outputs has its own folder, as before.
    assert_eq!(
        pwd("own.pwd"),
        run_dir.join("own/1/work").canonicalize().unwrap()
    );
    // The metric is read from where the step wrote it: a gate it misses fails the step.
    p.file("wf2.yaml", &SHARED.replace("score >= 3", "score >= 5"));
    let r = p.run(&["run", "wf2.yaml"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_eq!(p.step_status(&r.run_id(), "quiet"), "failed");
}

const RETRIED: &str = r#"name: retried
steps:
  flaky:
    run: |
      echo "{\"attempt\": $TUNA_ATTEMPT}" > "$TUNA_METRICS"
      [ "$TUNA_ATTEMPT" = 2 ]
    retry: { attempts: 2, backoff: 0s }
"#;

#[test]
fn gc_removes_an_older_attempts_files_from_the_runs_shared_folder() {
    let p = Project::new();
    p.file("wf.yaml", RETRIED);
    let id = p.run(&["run", "wf.yaml"]).ok().run_id();
    let files = p.home().join("runs").join(&id).join(".steps");
    let (first, second) = (
        files.join("flaky.1.metrics.json"),
        files.join("flaky.2.metrics.json"),
    );
    assert!(first.is_file() && second.is_file());
    let gc = p.run(&["gc", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap();
    assert_eq!(report["local"]["attempt_dirs_removed"], 1, "{report}");
    assert!(!first.exists(), "the failed attempt's metrics go");
    let kept = std::fs::read_to_string(&second).unwrap();
    assert_eq!(kept.trim(), "{\"attempt\": 2}", "the last attempt's stay");
}
