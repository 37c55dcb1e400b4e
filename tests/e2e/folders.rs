//! Attempt folders made ahead: while every slot is taken, the dispatcher makes the folder of
//! the next step to launch (one per slot ahead, no more), so its launch does not wait on it.

use std::path::PathBuf;
use std::time::Duration;

use tuna_tests::{Project, wait_until};

const WF: &str = r#"name: ahead
steps:
  a:
    run: while [ ! -e "$TUNA_PROJECT_DIR/gate" ]; do sleep 0.01; done
  b:
    run: echo b >> "$TUNA_PROJECT_DIR/lines"
  c:
    run: echo c >> "$TUNA_PROJECT_DIR/lines"
  d:
    run: echo d >> "$TUNA_PROJECT_DIR/lines"
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
    p.file("wf.yaml", WF);
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
