//! Benchmark of the ssh runner against real sshd servers on loopback addresses:
//! 1. step start latency: `SshRunner::launch` of a trivial job over the reused connection,
//!    against a fresh `ssh host true` (OpenSSH client, new connection each time);
//! 2. throughput: 200 small steps spread over two hosts, through the runner API and, when
//!    `TUNA_BIN` names a tuna binary, through `tuna run` with a two-host inventory;
//! 3. with `TUNA_BIN`: a 100 MiB output kept on its host, and the bytes that move (and the
//!    time it takes) for a step that needs it on the same host, on the other host, and here.
//!
//! Run with `python3 bench/ssh.py` (it builds in release mode and passes TUNA_BIN).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tuna_runners::ssh::{SshConfig, SshRunner};
use tuna_runners::{Job, Runner};
use tuna_tests::sshd::{self, Sshd};

fn config(sshd: &Sshd, name: &str, workdir: &std::path::Path) -> SshConfig {
    let mut cfg = SshConfig::new(name, &sshd.host, sshd.port, &sshd::user());
    cfg.identity = Some(sshd.client_key());
    cfg.known_hosts = sshd.known_hosts();
    cfg.workdir = workdir.to_string_lossy().into_owned();
    cfg.slots = 4;
    cfg
}

fn job(local: &std::path::Path, step: &str) -> Job {
    Job {
        run_id: "bench".into(),
        step: step.into(),
        attempt: 1,
        script: "true".into(),
        env: Default::default(),
        attempt_dir: local.join(step),
        timeout: None,
        wait_for_capacity: None,
        resources: Default::default(),
        stage: Vec::new(),
        outputs: Vec::new(),
        secrets: Vec::new(),
        workdir: None,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    assert!(
        sshd::available(),
        "needs /usr/sbin/sshd (apt-get install openssh-server)"
    );
    let hosts = [Sshd::start("127.0.0.1"), Sshd::start("127.0.0.2")];
    let remote = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let local = tempfile::tempdir().unwrap();
    let n = 30;

    // 1. Fresh OpenSSH connection per command.
    let mut fresh = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let ok = Command::new("ssh")
            .arg("-i")
            .arg(hosts[0].client_key())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                hosts[0].known_hosts().display()
            ))
            .args(["-o", "BatchMode=yes", "-p", &hosts[0].port.to_string()])
            .arg(format!("{}@{}", sshd::user(), hosts[0].host))
            .arg("true")
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh host true failed");
        fresh.push(t.elapsed());
    }
    // Launch over the reused connection (the first one connects; not counted).
    let runner = SshRunner::new(config(&hosts[0], "a", remote[0].path())).unwrap();
    let h = runner.launch(&job(local.path(), "warm")).await.unwrap();
    runner.watch(&h).await.unwrap();
    let (mut launch, mut round) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        let h = runner
            .launch(&job(local.path(), &format!("l{i}")))
            .await
            .unwrap();
        launch.push(t.elapsed());
        runner.watch(&h).await.unwrap();
        round.push(t.elapsed());
    }
    let (f, l) = (median(fresh), median(launch));
    println!("machine: {}", machine());
    println!("step start latency (median of {n}):");
    println!("  fresh `ssh host true`:                 {}", ms(f));
    println!(
        "  SshRunner::launch, reused connection:  {}  ({:.2}x)",
        ms(l),
        l.as_secs_f64() / f.as_secs_f64()
    );
    println!(
        "  launch + watch to the end of `true`:   {}",
        ms(median(round))
    );

    // 2. 200 steps on two hosts through the runner API, 4 at a time per host.
    let runners: Vec<Arc<SshRunner>> = hosts
        .iter()
        .zip(&remote)
        .enumerate()
        .map(|(i, (s, w))| Arc::new(SshRunner::new(config(s, &format!("h{i}"), w.path())).unwrap()))
        .collect();
    for r in &runners {
        let h = r
            .launch(&job(local.path(), &format!("warm-{}", r.name())))
            .await
            .unwrap();
        r.watch(&h).await.unwrap();
    }
    let steps: usize = std::env::var("SSH_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let t = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 0..steps {
        let runner = runners[i % 2].clone();
        let job = job(local.path(), &format!("t{i}"));
        let permit = slots.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let h = runner.launch(&job).await.unwrap();
            let o = runner.watch(&h).await.unwrap();
            drop(permit);
            assert!(o.success());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let dt = t.elapsed();
    println!(
        "{steps} steps on two hosts (runner API, 8 at once): {:.2} s, {:.1} steps/s",
        dt.as_secs_f64(),
        steps as f64 / dt.as_secs_f64()
    );

    if let Ok(bin) = std::env::var("TUNA_BIN") {
        let project = tempfile::tempdir().unwrap();
        let mut inv = String::from("runners:\n");
        for (i, (s, w)) in hosts.iter().zip(&remote).enumerate() {
            inv.push_str(&format!(
                "  host{i}:\n    type: ssh\n    host: {}\n    port: {}\n    user: {}\n    identity: {}\n    known_hosts: {}\n    workdir: {}\n    slots: 4\n",
                s.host, s.port, sshd::user(), s.client_key().display(), s.known_hosts().display(), w.path().display()
            ));
        }
        std::fs::write(project.path().join("runners.yaml"), inv).unwrap();
        let mut wf = String::from("name: many\nsteps:\n");
        for i in 0..steps {
            wf.push_str(&format!(
                "  s{i}:\n    run: echo {i} > o.txt\n    outputs: [o.txt]\n"
            ));
        }
        std::fs::write(project.path().join("wf.yaml"), wf).unwrap();
        let t = Instant::now();
        let out = Command::new(&bin)
            .current_dir(project.path())
            .env("TUNA_HOME", project.path().join(".tuna"))
            .args([
                "--progress",
                "quiet",
                "--runners",
                "runners.yaml",
                "run",
                "wf.yaml",
                "-j",
                "8",
            ])
            .output()
            .unwrap();
        let dt = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "{steps} steps on two hosts (`tuna run -j 8`, outputs fetched): {:.2} s, {:.1} steps/s",
            dt.as_secs_f64(),
            steps as f64 / dt.as_secs_f64()
        );
        kept_output(&bin, &hosts, &remote);
    }
}

/// A 100 MiB output made on host0 stays there; three steps need it: one on host0, one on
/// host1, one here. Prints, for each, the bytes tuna moved for it and how long it took.
fn kept_output(bin: &str, hosts: &[Sshd; 2], remote: &[tempfile::TempDir; 2]) {
    let project = tempfile::tempdir().unwrap();
    let mut inv = String::from("runners:\n  local: { type: local, slots: 2 }\n");
    for (i, (s, w)) in hosts.iter().zip(remote).enumerate() {
        inv.push_str(&format!(
            "  host{i}:\n    type: ssh\n    host: {}\n    port: {}\n    user: {}\n    identity: {}\n    known_hosts: {}\n    workdir: {}\n    slots: 4\n",
            s.host, s.port, sshd::user(), s.client_key().display(), s.known_hosts().display(), w.path().display()
        ));
    }
    std::fs::write(project.path().join("runners.yaml"), inv).unwrap();
    // Each step's command differs: the same command would share one cache entry.
    let use_it = "cksum < ${{ steps.make.outputs.model.bin }}; echo";
    let wf = format!(
        "name: kept\nsteps:\n  make:\n    runs-on: host0\n    \
         run: head -c 104857600 /dev/urandom > model.bin\n    outputs: [model.bin]\n  \
         same-host:\n    needs: [make]\n    runs-on: host0\n    run: {use_it} same\n  \
         other-host:\n    needs: [same-host]\n    runs-on: host1\n    run: {use_it} other\n  \
         here:\n    needs: [other-host]\n    runs-on: local\n    run: {use_it} here\n"
    );
    std::fs::write(project.path().join("wf.yaml"), wf).unwrap();
    let out = Command::new(bin)
        .current_dir(project.path())
        .env("TUNA_HOME", project.path().join(".tuna"))
        .env("RUST_LOG", "tuna::engine::executor=debug")
        .env("NO_COLOR", "1")
        .args([
            "--progress",
            "quiet",
            "--runners",
            "runners.yaml",
            "run",
            "wf.yaml",
            "-j",
            "1",
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let status = Command::new(bin)
        .current_dir(project.path())
        .env("TUNA_HOME", project.path().join(".tuna"))
        .args(["status", "last", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    println!("a 100 MiB output kept on host0 (keep_remote_over 64 MiB), needed by:");
    for step in ["same-host", "other-host", "here"] {
        let bytes: u64 = log
            .lines()
            .filter(|l| {
                l.contains("upstream outputs in place") && l.contains(&format!("step={step} "))
            })
            .filter_map(|l| {
                l.split("bytes=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        let s = status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == step)
            .unwrap();
        println!(
            "  {step:<11} bytes moved: {bytes:>10}   step took {:.2} s",
            s["duration_s"].as_f64().unwrap_or(0.0)
        );
    }
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split_once(':').map_or("", |x| x.1).trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    format!(
        "{model}, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}
