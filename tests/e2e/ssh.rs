//! SSH runners end to end: real OpenSSH servers on loopback addresses play the GPU hosts, and
//! the real `tuna` binary places, stages, watches, fails over, re-attaches and counts cost.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use tuna_tests::sshd::{self, Sshd};
use tuna_tests::{Project, Run, wait_exit, wait_until};

/// One fake GPU host: an sshd, its runner folder, and how runners.yaml describes it.
pub(super) struct Host {
    name: &'static str,
    pub(super) sshd: Sshd,
    workdir: tempfile::TempDir,
    gpu: &'static str,
    gpus: u32,
    price: f64,
}

impl Host {
    pub(super) fn start(
        name: &'static str,
        addr: &str,
        gpu: &'static str,
        gpus: u32,
        price: f64,
    ) -> Host {
        Host {
            name,
            sshd: Sshd::start(addr),
            workdir: tempfile::Builder::new()
                .prefix("tuna-remote-")
                .tempdir()
                .unwrap(),
            gpu,
            gpus,
            price,
        }
    }

    pub(super) fn yaml(&self, known_hosts: Option<&std::path::Path>) -> String {
        format!(
            "  {name}:\n    type: ssh\n    host: {host}\n    port: {port}\n    user: {user}\n    \
             identity: {key}\n    known_hosts: {kh}\n    workdir: {wd}\n    slots: 4\n    \
             lost_after: 2s\n    gpus: [{{ type: {gpu}, count: {n}, memory: 40GiB }}]\n    \
             price_per_hour: {price}\n",
            name = self.name,
            host = self.sshd.host,
            port = self.sshd.port,
            user = sshd::user(),
            key = self.sshd.client_key().display(),
            kh = known_hosts
                .map(PathBuf::from)
                .unwrap_or_else(|| self.sshd.known_hosts())
                .display(),
            wd = self.workdir.path().display(),
            gpu = self.gpu,
            n = self.gpus,
            price = self.price,
        )
    }

    pub(super) fn remote(&self, rel: &str) -> PathBuf {
        self.workdir.path().join(rel)
    }
}

pub(super) fn inventory(p: &Project, hosts: &[&Host]) {
    let mut y = String::from("runners:\n  local: { type: local, slots: 2 }\n");
    for h in hosts {
        y.push_str(&h.yaml(None));
    }
    p.file("runners.yaml", &y);
}

/// An a100 host (at `price` per GPU-hour) and a project whose runners.yaml has it beside
/// `local`; `None` (the test is skipped) without an OpenSSH server.
fn a100_project(price: f64) -> Option<(Host, Project)> {
    if skip() {
        return None;
    }
    let a100 = Host::start("a100-box", "127.0.0.2", "a100", 1, price);
    let p = Project::new();
    inventory(&p, &[&a100]);
    Some((a100, p))
}

pub(super) fn tuna(p: &Project, args: &[&str]) -> Run {
    let mut all = vec!["--runners", "runners.yaml"];
    all.extend_from_slice(args);
    p.run(&all)
}

pub(super) fn spawn(p: &Project, args: &[&str]) -> (Child, String) {
    let mut cmd = p.tuna();
    cmd.args(["--runners", "runners.yaml"]).args(args);
    tuna_tests::spawn_for_id(cmd)
}

pub(super) fn step<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {status}"))
}

pub(super) fn skip() -> bool {
    if !sshd::available() {
        eprintln!("skipped: no OpenSSH server (/usr/sbin/sshd) on this machine");
        return true;
    }
    false
}

#[test]
fn steps_on_a_t4_host_and_an_a100_host_pass_files_and_count_cost() {
    if skip() {
        return;
    }
    let t4 = Host::start("t4-box", "127.0.0.1", "t4", 1, 0.35);
    let a100 = Host::start("a100-box", "127.0.0.2", "a100", 1, 2.90);
    let p = Project::new();
    inventory(&p, &[&t4, &a100]);
    let pwned = p.path("pwned");
    p.file("data.txt", "b\na\nb\n");
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: two-hosts
params:
  note: "'; touch {pwned} #"
steps:
  prepare:
    runs-on: {{ gpu: t4 }}
    inputs: [data.txt]
    run: sort -u data.txt > clean.txt; echo "gpu=$CUDA_VISIBLE_DEVICES"
    outputs: [clean.txt]
  train:
    runs-on: {{ gpu: a100 }}
    run: |
      wc -l < ${{{{ steps.prepare.outputs.clean.txt }}}} > count.txt
      printf '%s' ${{{{ params.note }}}} > note.txt
      echo trained
    outputs: [count.txt, note.txt]
"#,
            pwned = pwned.display()
        ),
    );
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let status = p.status(&id);
    assert_eq!(step(&status, "prepare")["runner"], "t4-box");
    assert_eq!(step(&status, "train")["runner"], "a100-box");
    // Each step ran on its host, in that host's runner folder.
    assert!(
        t4.remote(&format!("runs/{id}/prepare/1/exit.json"))
            .exists()
    );
    assert!(
        a100.remote(&format!("runs/{id}/train/1/exit.json"))
            .exists()
    );
    assert!(!a100.remote(&format!("runs/{id}/prepare")).exists());
    // The file crossed from one host to the other; outputs came back.
    let work = p.home().join(format!("runs/{id}/train/1/work"));
    assert_eq!(
        std::fs::read_to_string(work.join("count.txt"))
            .unwrap()
            .trim(),
        "2"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("note.txt")).unwrap(),
        format!("'; touch {} #", pwned.display())
    );
    assert!(!pwned.exists(), "a parameter ran as a command");
    let logs = tuna(&p, &["logs", &id, "train"]).ok();
    assert_eq!(logs.stdout.trim(), "trained");
    let logs = tuna(&p, &["logs", &id, "prepare"]).ok();
    assert_eq!(logs.stdout.trim(), "gpu=0");
    // The ledger: GPU time was counted at each host's price.
    let train = step(&status, "train");
    assert!(train["gpu_hours"].as_f64().unwrap() > 0.0, "{train}");
    let ratio = train["cost"].as_f64().unwrap() / train["gpu_hours"].as_f64().unwrap();
    assert!((ratio - 2.90).abs() < 1e-6, "{train}");
    assert!(status["cost"].as_f64().unwrap() >= train["cost"].as_f64().unwrap());
    let text = tuna(&p, &["status", &id]).ok();
    assert!(text.stdout.contains("GPU-hours"), "{}", text.stdout);
    // Run again: all cache hits.
    let again = tuna(&p, &["run", "wf.yaml"]).ok();
    let statuses = p.step_statuses(&again.run_id());
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
}

#[test]
fn a_step_waits_behind_a_busy_a100_and_a_bounded_wait_fails_with_what_exists() {
    let Some((_a100, p)) = a100_project(2.90) else {
        return;
    };
    let gate = p.path("gate");
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: queue
steps:
  first:
    runs-on: {{ gpu: a100 }}
    run: touch {started}; while [ ! -e {gate} ]; do sleep 0.05; done
  second:
    runs-on: {{ gpu: a100 }}
    run: echo second
  impatient:
    runs-on: {{ gpu: a100 }}
    wait_for_capacity: 1s
    run: echo never
"#,
            started = p.path("started").display(),
            gate = gate.display()
        ),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml", "-j", "4"]);
    wait_until(Duration::from_secs(20), "the first step to start", || {
        p.path("started").exists()
    });
    wait_until(Duration::from_secs(20), "the second step to wait", || {
        p.step_status(&id, "second") == "waiting"
    });
    let status = p.status(&id);
    let msg = step(&status, "second")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(msg.contains("a100") && msg.contains("busy"), "{msg}");
    wait_until(
        Duration::from_secs(20),
        "the impatient step to give up",
        || p.step_status(&id, "impatient") == "failed",
    );
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait_exit(&mut child), 1);
    let status = p.status(&id);
    assert_eq!(step(&status, "first")["status"], "passed");
    assert_eq!(step(&status, "second")["status"], "passed");
    let msg = step(&status, "impatient")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("wait_for_capacity"), "{msg}");
    assert!(msg.contains("gpu: a100"), "{msg}");

    // Something no runner has fails before anything runs.
    p.file(
        "h100.yaml",
        "name: h\nsteps:\n  big:\n    runs-on: { gpu: h100 }\n    run: touch ran\n",
    );
    let r = tuna(&p, &["run", "h100.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("h100") && r.stderr.contains("a100-box"),
        "{}",
        r.stderr
    );
    assert!(!p.path("ran").exists());
}

#[test]
fn a_step_moves_to_another_host_when_its_host_stops_answering() {
    if skip() {
        return;
    }
    let mut east = Host::start("a100-east", "127.0.0.2", "a100", 1, 2.0);
    let west = Host::start("a100-west", "127.0.0.3", "a100", 1, 2.0);
    let p = Project::new();
    inventory(&p, &[&east, &west]);
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: failover
steps:
  train:
    runs-on: {{ gpu: a100 }}
    retry: {{ attempts: 2, backoff: 0s, on: [runner-lost] }}
    run: |
      echo "attempt $TUNA_ATTEMPT" >> {log}
      if [ "$TUNA_ATTEMPT" = 1 ]; then sleep 60; fi
      echo done > out.txt
    outputs: [out.txt]
"#,
            log = p.path("attempts").display()
        ),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    wait_until(Duration::from_secs(20), "attempt 1 to start", || {
        p.read("attempts").contains("attempt 1")
    });
    east.sshd.stop();
    assert_eq!(wait_exit(&mut child), 0);
    let status = p.status(&id);
    let train = step(&status, "train");
    assert_eq!(train["status"], "passed");
    assert_eq!(train["runner"], "a100-west");
    assert_eq!(train["attempt"], 2);
    assert_eq!(p.read("attempts"), "attempt 1\nattempt 2\n");
    // The orphaned attempt on the lost host is still running there: stop it.
    let pid = std::fs::read_to_string(east.remote(&format!("runs/{id}/train/1/pid"))).unwrap();
    let pgid: i32 = pid.trim().parse().unwrap();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn a_cut_connection_is_reopened_and_the_step_reattached() {
    let Some((a100, p)) = a100_project(2.90) else {
        return;
    };
    let gate = p.path("gate");
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: cut
steps:
  train:
    runs-on: {{ gpu: a100 }}
    run: |
      echo one; echo x >> {count}
      while [ ! -e {gate} ]; do sleep 0.05; done
      echo two
"#,
            count = p.path("count").display(),
            gate = gate.display()
        ),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    let log = p.home().join(format!("runs/{id}/train/1/stdout.log"));
    wait_until(
        Duration::from_secs(20),
        "the first line in the local log",
        || std::fs::read_to_string(&log).unwrap_or_default() == "one\n",
    );
    assert!(a100.sshd.cut_connections() > 0);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait_exit(&mut child), 0);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
    assert_eq!(p.read("count"), "x\n");
    assert_eq!(p.step_status(&id, "train"), "passed");
}

#[test]
fn tuna_killed_mid_remote_step_resumes_without_running_it_again() {
    let Some((a100, p)) = a100_project(2.90) else {
        return;
    };
    let gate = p.path("gate");
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: adopt
steps:
  train:
    runs-on: {{ gpu: a100 }}
    run: |
      echo ran >> {count}
      while [ ! -e {gate} ]; do sleep 0.05; done
      echo result > model.txt
    outputs: [model.txt]
  eval:
    needs: [train]
    runs-on: {{ gpu: a100 }}
    run: cat ${{{{ steps.train.outputs.model.txt }}}}
"#,
            count = p.path("count").display(),
            gate = gate.display()
        ),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    wait_until(Duration::from_secs(20), "the remote step to start", || {
        p.read("count") == "ran\n" && p.step_status(&id, "train") == "running"
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    // The step finishes while no tuna watches it.
    std::fs::write(&gate, "").unwrap();
    wait_until(Duration::from_secs(20), "the remote step to finish", || {
        a100.remote(&format!("runs/{id}/train/1/exit.json"))
            .exists()
    });
    let r = tuna(&p, &["resume", &id]).ok();
    assert_eq!(r.run_id(), id);
    assert_eq!(p.read("count"), "ran\n", "the remote command ran again");
    let status = p.status(&id);
    assert_eq!(step(&status, "train")["attempt"], 1);
    assert_eq!(step(&status, "eval")["status"], "passed");
    let logs = tuna(&p, &["logs", &id, "eval"]).ok();
    assert_eq!(logs.stdout.trim(), "result");
}

/// tuna killed after it started a step on a host but before the store held the step's
/// handle: `tuna cancel` finds the attempt's claim on the host and stops the step.
#[test]
fn cancel_of_a_run_killed_before_its_ssh_handle_was_stored_stops_the_step() {
    let Some((a100, p)) = a100_project(2.90) else {
        return;
    };
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: lost
steps:
  train:
    runs-on: {{ gpu: a100 }}
    run: |
      echo $$ > {pid}.tmp && mv {pid}.tmp {pid}
      sleep 300
"#,
            pid = p.path("pid").display()
        ),
    );
    let (child, id) = spawn(&p, &["run", "wf.yaml"]);
    wait_until(Duration::from_secs(20), "the remote step to start", || {
        !p.read("pid").is_empty() && p.step_status(&id, "train") == "running"
    });
    let pid: i32 = p.read("pid").trim().parse().unwrap();
    super::cancel::kill_lose_the_handle_and_cancel(child, &p, &id, "train", |a| tuna(&p, a));
    wait_until(Duration::from_secs(20), "the remote script to end", || {
        !tuna_tests::alive(pid)
    });
    assert_eq!(p.step_status(&id, "train"), "cancelled");
    assert!(a100.remote(&format!("runs/{id}/train/1/cancel")).exists());
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    if skip() {
        return;
    }
    let a100 = Host::start("a100-box", "127.0.0.2", "a100", 1, 2.90);
    let p = Project::new();
    p.file("empty_known_hosts", "");
    let good = a100.yaml(None);
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n{}",
            a100.yaml(Some(&p.path("empty_known_hosts")))
        ),
    );
    p.file(
        "wf.yaml",
        &format!(
            "name: keys\nsteps:\n  s:\n    runs-on: a100-box\n    run: touch {}\n",
            p.path("ran").display()
        ),
    );
    let check = tuna(&p, &["runners", "check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("host key refused"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("ssh-keyscan"), "{}", check.stdout);
    let r = tuna(&p, &["run", "wf.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let status = p.status(&r.run_id());
    let msg = step(&status, "s")["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("is not in") && msg.contains("ssh-keyscan"),
        "{msg}"
    );
    assert!(!p.path("ran").exists());

    // A different key on record for this host: refused, also with accept_new.
    let other = p.path("other_key");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(ok.success());
    let public = p.read("other_key.pub");
    let mut parts = public.split_whitespace();
    p.file(
        "changed_known_hosts",
        &format!(
            "[{}]:{} {} {}\n",
            a100.sshd.host,
            a100.sshd.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    );
    let changed = a100
        .yaml(Some(&p.path("changed_known_hosts")))
        .replace("    slots: 4\n", "    slots: 4\n    accept_new: true\n");
    p.file("runners.yaml", &format!("runners:\n{changed}"));
    let check = tuna(&p, &["runners", "check", "--json"]);
    assert_eq!(check.code, 1);
    let v: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    assert_eq!(v[0]["problem"], "host-key-refused");
    assert!(v[0]["detail"].as_str().unwrap().contains("does NOT match"));
    let r = tuna(&p, &["run", "wf.yaml"]);
    assert_eq!(r.code, 1);
    assert!(!p.path("ran").exists());

    // The right known_hosts: reachable, with the declared GPUs listed.
    p.file("runners.yaml", &format!("runners:\n{good}"));
    let check = tuna(&p, &["runners", "check"]).ok();
    assert!(check.stdout.contains("reachable"), "{}", check.stdout);
    assert!(check.stdout.contains("a100×1"), "{}", check.stdout);
}

#[test]
fn the_budget_stops_new_dispatches_with_a_clear_message() {
    // 3600 per GPU-hour: one GPU-second costs 1.
    let Some((_a100, p)) = a100_project(3600.0) else {
        return;
    };
    p.file(
        "wf.yaml",
        r#"
name: budget
budget: { max_cost: 0.5 }
steps:
  first:
    runs-on: { gpu: a100 }
    run: sleep 1
  second:
    needs: [first]
    runs-on: { gpu: a100 }
    run: echo too late
"#,
    );
    let r = tuna(&p, &["run", "wf.yaml"]);
    assert_eq!(r.code, 1);
    let status = p.status(&r.run_id());
    assert_eq!(step(&status, "first")["status"], "passed");
    assert_eq!(step(&status, "second")["status"], "failed");
    let msg = step(&status, "second")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("budget") && msg.contains("max_cost 0.5"),
        "{msg}"
    );
    assert!(status["cost"].as_f64().unwrap() >= 1.0, "{status}");
}

#[test]
fn cancel_and_follow_a_remote_step() {
    let Some((a100, p)) = a100_project(2.90) else {
        return;
    };
    p.file(
        "wf.yaml",
        r#"
name: long
steps:
  train:
    runs-on: { gpu: a100 }
    run: echo epoch-1; sleep 300
"#,
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    // `tuna logs -f` follows the local copy of the remote log.
    let mut follow = p.spawn(&["logs", &id, "train", "-f"]);
    let mut line = String::new();
    BufReader::new(follow.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "epoch-1");
    let pid_file = a100.remote(&format!("runs/{id}/train/1/pid"));
    wait_until(Duration::from_secs(20), "the remote pid", || {
        pid_file.exists()
    });
    let pgid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    tuna(&p, &["cancel", &id]).ok();
    assert_eq!(wait_exit(&mut child), 130);
    // `logs -f` ends with the run (its exit code is the CLI's business, not the runner's).
    wait_exit(&mut follow);
    assert_eq!(p.step_status(&id, "train"), "cancelled");
    wait_until(Duration::from_secs(20), "the remote job to be gone", || {
        !tuna_tests::alive(pgid)
    });
}

#[test]
fn a_built_in_step_runs_on_a_host_with_its_with_files_staged() {
    if skip() {
        return;
    }
    let t4 = Host::start("t4-box", "127.0.0.1", "t4", 1, 0.35);
    let p = Project::new();
    // The host is this machine: its `tuna` is the one under test.
    p.file(
        "runners.yaml",
        &format!(
            "runners:\n  local: {{ type: local, slots: 2 }}\n{}    tuna: {}\n",
            t4.yaml(None),
            tuna_tests::tuna_bin().display()
        ),
    );
    p.file(
        "data/train.jsonl",
        "{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"c\", \"completion\": \" d\"}\n",
    );
    p.file(
        "wf.yaml",
        r#"
name: kind-on-host
steps:
  prepare:
    runs-on: { gpu: t4 }
    uses: data.prepare
    with: { input: data/train.jsonl }
  count:
    runs-on: local
    run: wc -l < ${{ steps.prepare.outputs.train.jsonl }}
"#,
    );
    let r = tuna(&p, &["run", "wf.yaml"]).ok();
    let id = r.run_id();
    let status = p.status(&id);
    let prepare = step(&status, "prepare");
    assert_eq!(prepare["runner"], "t4-box", "{status}");
    assert_eq!(prepare["metrics"]["examples"], 2.0, "{status}");
    assert_eq!(prepare["metrics"]["dropped_duplicates"], 1.0, "{status}");
    let log = p.run(&["logs", &id, "count"]).ok().stdout;
    assert_eq!(log.trim(), "2");
}
