//! Chaos: the daemon is killed with SIGKILL in the middle of a burst of 400 submissions from 8
//! clients, then started again. Clients retry with the same `Idempotency-Key` until they get an
//! answer: every submission ends up as exactly one run, and every run's step runs exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tuna_tests::{Project, wait_until};

use crate::daemon_harness::{Serve, TOKEN, submission};

const CLIENTS: usize = 8;
const EACH: usize = 50;

/// One POST with an `Idempotency-Key`; `None` when the connection failed or was cut.
fn post(addr: &str, path: &str, key: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nIdempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code: u16 = text.split(' ').nth(1)?.parse().ok()?;
    let (_, rest) = text.split_once("\r\n\r\n")?;
    Some((code, rest.to_string()))
}

fn run_id(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("json answer");
    v["id"].as_str().expect("a run id").to_string()
}

#[test]
fn sigkill_during_a_burst_of_submissions_loses_and_doubles_nothing() {
    let p = Project::new();
    let ran = p.path("ran.txt");
    let text = format!(
        "name: chaos\nsteps:\n  once:\n    cache: false\n    run: echo \"$TUNA_RUN_ID\" >> {}\n",
        ran.display()
    );
    let body = submission(&text, "wf.yaml");
    let d = Serve::start(&p, &[]);
    let addr = Arc::new(Mutex::new(d.addr.clone()));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (addr, answered, body) = (addr.clone(), answered.clone(), body.clone());
        clients.push(std::thread::spawn(move || {
            let mut ids = BTreeMap::new();
            for i in 0..EACH {
                let key = format!("client{c}-sub{i}");
                let mut tries = 0;
                let id = loop {
                    tries += 1;
                    assert!(tries < 2000, "{key}: no answer");
                    let at = addr.lock().unwrap().clone();
                    match post(&at, "/api/v1/runs", &key, &body) {
                        Some((201, b)) => break run_id(&b),
                        Some((code, b)) if code < 500 && code != 0 => {
                            panic!("{key}: {code} {b}")
                        }
                        // Cut off, refused or a 5xx: the same key again, a moment later.
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                };
                answered.fetch_add(1, Ordering::SeqCst);
                ids.insert(key, id);
            }
            ids
        }));
    }
    wait_until(Duration::from_secs(120), "a quarter of the answers", || {
        answered.load(Ordering::SeqCst) >= CLIENTS * EACH / 4
    });
    d.kill();
    let d = Serve::start(&p, &[]);
    *addr.lock().unwrap() = d.addr.clone();
    let mut ids = BTreeMap::new();
    for c in clients {
        ids.extend(c.join().expect("client"));
    }
    assert_eq!(ids.len(), CLIENTS * EACH);
    let distinct: BTreeSet<&String> = ids.values().collect();
    assert_eq!(distinct.len(), CLIENTS * EACH, "one run per submission");
    let runs = d.get_json("/api/v1/runs?workflow=chaos&limit=100000");
    let listed: BTreeSet<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed,
        distinct.iter().map(|s| s.to_string()).collect(),
        "exactly the answered runs exist"
    );
    wait_until(Duration::from_secs(600), "every run to pass", || {
        d.get_json("/api/v1/runs?workflow=chaos&status=passed&limit=100000")
            .as_array()
            .unwrap()
            .len()
            == CLIENTS * EACH
    });
    let lines: Vec<String> = p.read("ran.txt").lines().map(String::from).collect();
    let once: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(lines.len(), CLIENTS * EACH, "each step ran once");
    assert_eq!(once.len(), CLIENTS * EACH);
}

#[test]
fn an_idempotency_key_gives_the_same_run_and_refuses_another_submission() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let a = submission("name: idem\nsteps:\n  s: { run: echo a }\n", "wf.yaml");
    let b = submission("name: idem\nsteps:\n  s: { run: echo b }\n", "wf.yaml");
    let (c1, first) = post(&d.addr, "/api/v1/runs", "k-1", &a).unwrap();
    let (c2, again) = post(&d.addr, "/api/v1/runs", "k-1", &a).unwrap();
    assert_eq!((c1, c2), (201, 201), "{first} {again}");
    assert_eq!(run_id(&first), run_id(&again));
    let (c3, other) = post(&d.addr, "/api/v1/runs", "k-1", &b).unwrap();
    assert_eq!(c3, 409, "{other}");
    assert!(other.contains("Idempotency-Key"), "{other}");
    let (c4, bad) = post(&d.addr, "/api/v1/runs", "k\u{7f}", &a).unwrap();
    assert_eq!(c4, 400, "{bad}");
    let runs = d.get_json("/api/v1/runs?workflow=idem");
    assert_eq!(runs.as_array().unwrap().len(), 1);
}

#[test]
fn tuna_submit_waits_for_a_daemon_that_is_starting_and_makes_one_run() {
    let p = Project::new();
    p.file("wf.yaml", "name: late\nsteps:\n  s: { run: echo late }\n");
    // A free port nobody listens on yet.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let submit = p
        .tuna()
        .env("TUNA_SERVER", format!("http://{addr}"))
        .env("TUNA_TOKEN", TOKEN)
        .args(["submit", "wf.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let d = Serve::start_with(&p, &[], &["--listen", &addr]);
    let out = submit.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let runs = d.get_json("/api/v1/runs?workflow=late");
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["id"], id.as_str());
}
