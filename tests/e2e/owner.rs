//! A command that looks at a run in the moment its owner holds the store without answering on
//! the control socket (the owner's last moment, after its run ended, or its first): it waits
//! for the owner and then reads the store, instead of failing with "cannot reach".

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};

use tuna_tests::{Project, wait_exit};

/// A command that has met the socket-less owner once and is trying again.
struct Waiting {
    child: Child,
    /// stderr up to the "trying again" line.
    said: String,
    rest: BufReader<std::process::ChildStderr>,
}

/// Starts `tuna ARGS…` with debug logs and returns once it said it is trying again; panics
/// with what it printed if it ended instead.
fn waiting(p: &Project, args: &[&str]) -> Waiting {
    let mut child = p
        .tuna()
        .args(args)
        .env("RUST_LOG", "tuna=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tuna");
    let rest = BufReader::new(child.stderr.take().unwrap());
    let mut w = Waiting {
        child,
        said: String::new(),
        rest,
    };
    loop {
        let mut line = String::new();
        if w.rest.read_line(&mut line).unwrap() == 0 {
            let (code, out, err) = w.finish();
            panic!(
                "`tuna {}` ended ({code}) instead of waiting:\n{err}{out}",
                args.join(" ")
            );
        }
        w.said.push_str(&line);
        if line.contains("did not answer") && line.contains("trying again") {
            return w;
        }
    }
}

impl Waiting {
    /// Its exit code, stdout and whole stderr.
    fn finish(mut self) -> (i32, String, String) {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.rest.read_to_string(&mut self.said).unwrap();
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, out, self.said)
    }
}

#[test]
fn commands_started_while_the_owner_does_not_answer_wait_and_then_read_the_store() {
    let p = Project::new();
    let (mut run, id) = super::cancel::start_held(&p);
    // The owner keeps the store but its socket is gone: the moment after its run ends.
    std::fs::remove_file(p.home().join("control.sock")).unwrap();
    let status = waiting(&p, &["status", &id, "--json"]);
    let runs = waiting(&p, &["runs", "--json"]);
    let logs = waiting(&p, &["logs", &id, "s", "-f"]);
    let cancel = waiting(&p, &["cancel", &id]);
    p.file("go", "");
    assert_eq!(wait_exit(&mut run), 0);

    let (code, out, err) = status.finish();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status json");
    assert_eq!(v["status"], "passed", "{out}");
    let (code, out, err) = runs.finish();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("\"passed\""), "{out}");
    let (code, out, err) = logs.finish();
    assert_eq!((code, out.as_str()), (0, "one\ntwo\n"), "{err}");
    // The cancel reached the store after the run had passed: nothing to stop, said plainly.
    let (code, out, err) = cancel.finish();
    assert_ne!(code, 0, "{out}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("error:") && l.ends_with("is not running (it is passed)")),
        "{err}"
    );
}
