//! The run's journal of local claims and exit records: a record torn by a writer that was
//! killed mid-line is skipped and reported, and loses nothing else.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tuna_tests::{Project, wait_until};

const WF: &str = r#"name: torn
steps:
  a:
    run: while [ ! -e "$TUNA_PROJECT_DIR/gate" ]; do sleep 0.01; done; echo a >> "$TUNA_PROJECT_DIR/lines"
  b:
    needs: [a]
    run: echo b >> "$TUNA_PROJECT_DIR/lines"
"#;

fn journal(p: &Project) -> Option<PathBuf> {
    let runs = std::fs::read_dir(p.home().join("runs")).ok()?;
    runs.flatten()
        .map(|e| e.path().join(".journal"))
        .find(|j| j.exists())
}

#[test]
fn a_torn_journal_record_is_skipped_reported_and_loses_nothing() {
    let p = Project::new();
    p.file("wf.yaml", WF);
    let mut tuna = p.spawn(&["run", "wf.yaml"]);
    wait_until(Duration::from_secs(30), "step a is claimed", || {
        journal(&p).is_some_and(|j| std::fs::read_to_string(j).unwrap().contains("\"claim\""))
    });
    tuna.kill().unwrap(); // SIGKILL, while `a` runs on under its waiter
    tuna.wait().unwrap();
    // A writer killed halfway through a record.
    let path = journal(&p).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(br#"0badc0de {"exit":{"attempt":"/nowhere","rec"#)
        .unwrap();
    p.file("gate", "");
    let resumed = p.run(&["resume", "--last"]).ok();
    assert!(
        resumed.stderr.contains("torn record"),
        "the torn record is reported: {}",
        resumed.stderr
    );
    assert_eq!(p.read("lines"), "a\nb\n", "each step ran once");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("\"exit\"")).count(),
        3,
        "a's and b's exit records, and the torn line ended by the next writer: {text}"
    );
}

/// The journal is the run folder's `.journal`: a step may be named `journal` (step names have
/// no dot), and its folder sits beside the journal.
#[test]
fn a_step_named_journal_runs() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"name: named
steps:
  journal:
    run: echo j >> "$TUNA_PROJECT_DIR/lines"
  after:
    needs: [journal]
    run: echo after >> "$TUNA_PROJECT_DIR/lines"
"#,
    );
    p.run(&["run", "wf.yaml"]).ok();
    assert_eq!(p.read("lines"), "j\nafter\n");
}
