//! A running step's progress (`$TUNA_PROGRESS`) seen from a second terminal: `tuna status`
//! (text and `--json`) shows it while the step runs and drops it once the step has ended;
//! `--progress plain` prints no extra lines for it, the bars on a terminal show it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tuna_tests::{Project, tuna_bin, wait_until};

/// `long` reports 3 of 8 steps, then waits for the test's go-ahead file.
const WF: &str = r#"
name: progress
steps:
  long:
    run: |
      printf '{"done": 3, "total": 8, "unit": "steps", "rate": 1500.4, "rate_unit": "tokens/s", "message": "loss 2.5"}' > "$TUNA_PROGRESS.tmp"
      mv "$TUNA_PROGRESS.tmp" "$TUNA_PROGRESS"
      while [ ! -e "$TUNA_PROJECT_DIR/go" ]; do sleep 0.05; done
      echo done
"#;

/// The status view of step `long`.
fn long(p: &Project, id: &str) -> serde_json::Value {
    p.status(id)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "long")
        .cloned()
        .unwrap()
}

#[test]
fn status_shows_a_running_steps_progress_file_and_drops_it_when_the_step_ends() {
    let p = Project::new();
    p.file("wf.yaml", WF);
    let mut child = p.spawn(&["run", "wf.yaml", "--progress", "plain"]);
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = line.trim().to_string();

    let mut seen = serde_json::Value::Null;
    wait_until(Duration::from_secs(30), "long's progress in status", || {
        seen = long(&p, &id);
        !seen["progress"].is_null()
    });
    assert_eq!(seen["status"], "running", "{seen}");
    let progress = &seen["progress"];
    assert_eq!(progress["done"], 3, "{seen}");
    assert_eq!(progress["total"], 8, "{seen}");
    assert_eq!(progress["unit"], "steps", "{seen}");
    assert_eq!(progress["rate_unit"], "tokens/s", "{seen}");
    assert_eq!(progress["message"], "loss 2.5", "{seen}");
    let text = p.run(&["status", &id]).stdout;
    assert!(
        text.contains("3/8 steps · 1,500 tokens/s · loss 2.5"),
        "{text}"
    );

    p.file("go", "");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let after = long(&p, &id);
    assert_eq!(after["status"], "passed", "{after}");
    assert!(after.get("progress").is_none(), "{after}");
    // The file stays where `$TUNA_PROGRESS` named it (a step without outputs has no folder of
    // its own: the run's `.steps/`); plain output gets no line from it.
    let file = p
        .home()
        .join(format!("runs/{id}/.steps/long.1.progress.json"));
    assert!(file.exists(), "{}", file.display());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("3/8"), "{stderr}");
}

/// `tuna run --progress bars` on a terminal (a pseudo-terminal from util-linux `script`): the
/// running step's line shows its progress, refreshed while it runs.
#[test]
fn the_bars_show_a_running_steps_progress_on_a_terminal() {
    let p = Project::new();
    p.file("wf.yaml", WF);
    let plain = p.tuna();
    let mut cmd = Command::new("script");
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .current_dir(p.root())
        .env("TUNA_E2E_BIN", tuna_bin())
        .env("TERM", "xterm")
        .args(["-q", "-f", "-e", "-c"])
        .arg(r#""$TUNA_E2E_BIN" --progress bars run wf.yaml"#)
        .arg("/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut out = child.stdout.take().unwrap();
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    wait_until(
        Duration::from_secs(30),
        "the bars to show long's progress",
        || text().contains("long: running · 3/8 steps · 1,500 tokens/s · loss 2.5"),
    );
    p.file("go", "");
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{}", text());
    assert!(text().contains("passed"), "{}", text());
}
