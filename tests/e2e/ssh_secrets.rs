//! Secrets on an ssh host: the value reaches the step's environment, the logs copied back are
//! masked (also when a later tuna re-attaches to the step and copies them again), and on the
//! host the logs are private to the user.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use tuna_tests::{Project, wait_until};

use crate::ssh::{Host, inventory, skip, step, tuna};

const VALUE: &str = "ssh-s3cr3t-789";

#[test]
fn a_secret_on_a_host_is_masked_in_logs_also_after_tuna_is_killed_and_resumes() {
    if skip() {
        return;
    }
    let host = Host::start("secret-box", "127.0.0.2", "a100", 1, 1.0);
    let p = Project::new();
    inventory(&p, &[&host]);
    let gate = p.path("gate");
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: sshsec
secrets:
  API_KEY: {{ env: MY_API_KEY }}
steps:
  use:
    runs-on: {{ gpu: a100 }}
    secrets: [API_KEY]
    run: |
      echo "before=$API_KEY"
      echo "err=$API_KEY" >&2
      while [ ! -e {gate} ]; do sleep 0.05; done
      echo "after=$API_KEY"
      test "$API_KEY" = "$(cat {expect})"
"#,
            gate = gate.display(),
            expect = p.path("expect").display(),
        ),
    );
    p.file("expect", VALUE);
    let mut child = p
        .tuna()
        .env("MY_API_KEY", VALUE)
        .args(["--runners", "runners.yaml", "run", "wf.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut id)
        .unwrap();
    let id = id.trim().to_string();
    // The log copied back while the step runs is masked.
    wait_until(Duration::from_secs(20), "the masked log line", || {
        tuna(&p, &["logs", &id, "use"])
            .stdout
            .contains("before=***")
    });
    let remote = host.remote(&format!("runs/{id}/use/1"));
    for name in ["stdout.log", "stderr.log"] {
        let mode = std::fs::metadata(remote.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} on the host is {mode:o}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::write(&gate, "").unwrap();
    wait_until(Duration::from_secs(20), "the step to finish", || {
        remote.join("exit.json").exists()
    });
    // A new tuna re-attaches (the secret read again) and copies the logs again, masked.
    let r = p
        .tuna()
        .env("MY_API_KEY", VALUE)
        .args(["--runners", "runners.yaml", "resume", &id])
        .output()
        .unwrap();
    tuna_tests::Run::from(r).ok();
    assert_eq!(step(&p.status(&id), "use")["status"], "passed");
    let out = tuna(&p, &["logs", &id, "use"]).ok().stdout;
    assert_eq!(out, "before=***\nafter=***\n");
    let err = tuna(&p, &["logs", &id, "use", "--stderr"]).ok().stdout;
    assert_eq!(err, "err=***\n");
    for f in tuna_tests::files_under(&p.home()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        if let Some(at) = text.find(VALUE) {
            let lo = text.floor_char_boundary(at.saturating_sub(300));
            let hi = text.ceil_char_boundary((at + 100).min(text.len()));
            panic!("{} holds the secret: {:?}", f.display(), &text[lo..hi]);
        }
    }
}
