//! Uploads to a real daemon: a 200 MiB input travels within the default limits without the
//! daemon's memory growing by more than a few MiB (streamed to disk, hashed on the way), and the
//! standard-library Python client printed in docs/api.md submits a project.

use std::io::Write;
use std::time::Duration;

use tuna_tests::{Project, wait_until, workspace_root};

use crate::daemon_harness::{Serve, TOKEN};
use crate::daemon_project::received;

const BIG: u64 = 200 << 20;

/// `VmRSS` or `VmHWM` of a process, in KiB.
fn vm(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in {status}"))
}

#[test]
fn a_200_mib_input_travels_without_the_daemon_growing_by_more_than_a_few_mib() {
    let p = Project::new();
    p.file(
        "big.yaml",
        "name: big\nsteps:\n  size:\n    inputs: [data/big.bin]\n    run: wc -c < data/big.bin\n",
    );
    let mut out = std::fs::File::create(p.path("data/big.bin"))
        .or_else(|_| {
            std::fs::create_dir_all(p.path("data"))?;
            std::fs::File::create(p.path("data/big.bin"))
        })
        .unwrap();
    let mut bytes = blake3::Hasher::new().update(b"big").finalize_xof();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..BIG >> 20 {
        bytes.fill(&mut chunk);
        out.write_all(&chunk).unwrap();
    }
    drop(out);
    let d = Serve::start(&p, &[]);
    // Warm: one small submission, so the first-use allocations are not counted.
    p.file(
        "small.yaml",
        "name: small\nsteps:\n  a:\n    inputs: [s.txt]\n    run: cat s.txt\n",
    )
    .file("s.txt", "small\n");
    d.tuna(&p, &["submit", "small.yaml", "--follow"]).ok();
    let pid = d.child.id();
    let before = vm(pid, "VmRSS:");
    let r = d.tuna(&p, &["submit", "big.yaml", "--follow"]).ok();
    let peak = vm(pid, "VmHWM:");
    assert_eq!(received(&d), BIG + 6);
    let grew_mib = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "daemon RSS {before} KiB before, peak {peak} KiB: grew {grew_mib:.1} MiB for a 200 MiB upload"
    );
    assert!(
        grew_mib < 24.0,
        "the daemon grew by {grew_mib:.1} MiB taking in 200 MiB"
    );
    let log = d.tuna(&p, &["logs", &r.run_id(), "size"]).ok();
    assert_eq!(log.stdout.trim(), BIG.to_string());
}

/// The Python client of docs/api.md (the ```python block after `<!-- submit.py -->`).
fn python_example() -> String {
    let doc = std::fs::read_to_string(workspace_root().join("docs/api.md")).unwrap();
    let after = doc
        .split_once("<!-- submit.py -->")
        .expect("the marker in docs/api.md")
        .1;
    let code = after.split_once("```python\n").expect("a python block").1;
    code.split_once("```").expect("its end").0.to_string()
}

#[test]
fn the_python_client_in_the_api_docs_submits_a_project() {
    let p = Project::new();
    p.file("submit.py", &python_example())
        .file(
            "proj/wf.yaml",
            "name: py\nsteps:\n  count:\n    inputs: [data/words.txt]\n    run: wc -w < data/words.txt\n",
        )
        .file("proj/data/words.txt", "one two three four\n");
    let d = Serve::start(&p, &[]);
    let python = |args: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(p.path("submit.py"))
            .args(args)
            .current_dir(p.root())
            .env("TUNA_SERVER", &d.url)
            .env("TUNA_TOKEN", TOKEN)
            .output()
            .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a json answer");
        v["id"].as_str().expect("a run id").to_string()
    };
    let id = python(&["proj/wf.yaml", "data/words.txt"]);
    wait_until(Duration::from_secs(60), "the run to pass", || {
        d.run_status(&id) == "passed"
    });
    let log = d.tuna(&p, &["logs", &id, "count"]).ok();
    assert_eq!(log.stdout.trim(), "4");
    let sent = received(&d);
    assert_eq!(sent, 19);
    // Again: the daemon has the file (found by its sha256), so nothing travels.
    let again = python(&["proj/wf.yaml", "data/words.txt"]);
    assert_ne!(again, id);
    assert_eq!(received(&d), sent);
}
