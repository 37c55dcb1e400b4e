//! Artifacts have a home: big outputs of steps on ssh runners stay on their host, are reused
//! there in place, cross to another runner only when a step there needs them, come here on
//! `tuna pull`, and count for the cache only while they still exist. Also: a host that was
//! down is used again once it answers, without restarting tuna.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tuna_tests::{Project, wait_exit, wait_until};

use super::ssh::{Host, inventory, skip, spawn, step, tuna};

/// runners.yaml with a local runner and `hosts`, each keeping outputs over 1 KiB.
pub(super) fn keeping_inventory(p: &Project, hosts: &[&Host]) {
    let mut y = String::from("runners:\n  local: { type: local, slots: 2 }\n");
    for h in hosts {
        y.push_str(&h.yaml(None));
        y.push_str("    keep_remote_over: 1KiB\n");
    }
    p.file("runners.yaml", &y);
}

/// The line of `tuna plan`'s output about `step`.
pub(super) fn plan_line<'a>(plan: &'a tuna_tests::Run, step: &str) -> &'a str {
    plan.stdout
        .lines()
        .find(|l| l.starts_with(step))
        .unwrap_or_default()
}

pub(super) fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Where the local artifact store keeps the blob `hex` (either copy).
fn in_local_store(p: &Project, hex: &str) -> bool {
    let dir = p.home().join("cas/objects").join(&hex[..2]);
    dir.join(&hex[2..]).exists() || dir.join(format!("{}.x", &hex[2..])).exists()
}

const WEIGHTS: usize = 8192;

fn weights() -> Vec<u8> {
    vec![b'w'; WEIGHTS]
}

const WORKFLOW: &str = r#"
name: artifacts
steps:
  train:
    runs-on: a100-box
    run: |
      mkdir -p adapter/empty
      printf '%8192s' | tr ' ' w > adapter/weights.bin
      echo '{"r": 8}' > adapter/config.json
      echo small > note.txt
      echo trained >> TRAINED_LOG
    outputs: [adapter/, note.txt]
  merge:
    needs: [train]
    runs-on: a100-box
    run: |
      cat ${{ steps.train.outputs.adapter/ }}/weights.bin ${{ steps.train.outputs.adapter/ }}/config.json > merged.bin
      test -d ${{ steps.train.outputs.adapter/ }}/empty
      readlink ${{ steps.train.outputs.adapter/ }}/weights.bin
    outputs: [merged.bin]
  eval:
    needs: [train, merge]
    runs-on: t4-box
    run: |
      cp -rL ${{ steps.train.outputs.adapter/ }} got
      wc -c < ${{ steps.merge.outputs.merged.bin }} > merged-size.txt
    outputs: [got/, merged-size.txt]
"#;

/// The workflow, with the file each run of `train` adds a line to in `p`.
fn workflow(p: &Project) -> String {
    WORKFLOW.replace("TRAINED_LOG", &p.path("trained.log").display().to_string())
}

/// The same workflow and one more step on this machine that needs outputs kept on both hosts.
fn with_local_report(p: &Project) -> String {
    format!(
        "{}  report:\n    needs: [train, eval]\n    runs-on: local\n    run: |\n      \
         cp -r ${{{{ steps.train.outputs.adapter/ }}}} from-a100\n      \
         cp -r ${{{{ steps.eval.outputs.got/ }}}} from-t4\n    outputs: [from-a100/, from-t4/]\n",
        workflow(p)
    )
}

fn run_dir(host: &Host, id: &str, step: &str) -> PathBuf {
    host.remote(&format!("runs/{id}/{step}/1"))
}

#[test]
fn big_outputs_stay_on_their_host_and_move_only_where_they_are_needed() {
    if skip() {
        return;
    }
    let a100 = Host::start("a100-box", "127.0.0.2", "a100", 1, 2.90);
    let t4 = Host::start("t4-box", "127.0.0.1", "t4", 1, 0.35);
    let p = Project::new();
    keeping_inventory(&p, &[&a100, &t4]);
    p.file("wf.yaml", &workflow(&p));
    let hex = b3(&weights());

    let id = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    let status = p.status(&id);
    // The adapter stayed on the A100 host: in its store, not in the local one, not fetched.
    let train = step(&status, "train");
    assert_eq!(train["kept_on"]["adapter/"], "a100-box", "{train}");
    assert!(train["kept_on"].get("note.txt").is_none(), "{train}");
    assert!(a100.remote(&format!("cas/{hex}")).exists());
    assert!(!in_local_store(&p, &hex), "the big output came back");
    let local_work = p.home().join(format!("runs/{id}/train/1/work"));
    assert_eq!(
        std::fs::read_to_string(local_work.join("note.txt")).unwrap(),
        "small\n"
    );
    assert!(!local_work.join("adapter").exists());
    // The step on the same host used it in place: a link into that host's store.
    let linked = p.read(&format!(".tuna/runs/{id}/merge/1/stdout.log"));
    assert_eq!(
        PathBuf::from(linked.trim()),
        a100.remote(&format!("cas/{hex}")),
        "merge did not read the adapter in place"
    );
    assert_eq!(step(&status, "merge")["kept_on"]["merged.bin"], "a100-box");
    // The step on the other host got both, streamed through tuna, intact.
    assert!(t4.remote(&format!("cas/{hex}")).exists());
    let got = run_dir(&t4, &id, "eval").join("work/got/weights.bin");
    assert_eq!(b3(&std::fs::read(&got).unwrap()), hex);
    let eval_work = p.home().join(format!("runs/{id}/eval/1/work"));
    assert_eq!(
        std::fs::read_to_string(eval_work.join("merged-size.txt"))
            .unwrap()
            .trim(),
        (WEIGHTS + "{\"r\": 8}\n".len()).to_string()
    );
    assert_eq!(step(&status, "eval")["kept_on"]["got/"], "t4-box");

    // A step here needs outputs kept on both hosts: the others are cache hits (their kept
    // outputs are still there), and the outputs come into the local store first.
    p.file("wf2.yaml", &with_local_report(&p));
    let id2 = tuna(&p, &["run", "wf2.yaml"]).ok().run_id();
    let statuses = p.step_statuses(&id2);
    for (name, s) in &statuses {
        let want = if name == "report" { "passed" } else { "cached" };
        assert_eq!(s, want, "{statuses:?}");
    }
    let report = p.home().join(format!("runs/{id2}/report/1/work"));
    for copy in ["from-a100", "from-t4"] {
        assert_eq!(
            b3(&std::fs::read(report.join(copy).join("weights.bin")).unwrap()),
            hex
        );
        assert!(report.join(copy).join("config.json").exists());
    }
    assert!(in_local_store(&p, &hex));

    // `tuna pull` writes a step's outputs, kept or not, checked by digest.
    let pulled = tuna(&p, &["pull", &id, "train", "--to", "pulled"]).ok();
    assert!(pulled.stdout.contains("a100-box"), "{}", pulled.stdout);
    assert_eq!(
        std::fs::read(p.path("pulled/adapter/weights.bin")).unwrap(),
        weights()
    );
    assert_eq!(p.read("pulled/adapter/config.json"), "{\"r\": 8}\n");
    assert!(p.path("pulled/adapter/empty").is_dir());
    assert_eq!(p.read("pulled/note.txt"), "small\n");
    tuna(&p, &["pull", &id, "eval"]).ok();
    assert_eq!(
        std::fs::read(p.path("eval-outputs/got/weights.bin")).unwrap(),
        weights()
    );
}

#[test]
fn a_kept_output_that_is_gone_makes_its_step_run_again_and_plan_says_why() {
    if skip() {
        return;
    }
    let mut a100 = Host::start("a100-box", "127.0.0.2", "a100", 1, 2.90);
    let t4 = Host::start("t4-box", "127.0.0.1", "t4", 1, 0.35);
    let p = Project::new();
    keeping_inventory(&p, &[&a100, &t4]);
    p.file("wf.yaml", &workflow(&p));
    let hex = b3(&weights());
    tuna(&p, &["run", "wf.yaml"]).ok();
    assert_eq!(p.read("trained.log").lines().count(), 1);
    let plan = tuna(&p, &["plan", "wf.yaml"]).ok();
    assert!(
        plan.stdout.contains("3 of 3 steps cached"),
        "{}",
        plan.stdout
    );

    // The host loses the blob: the cache entry no longer counts, and plan says where.
    std::fs::remove_file(a100.remote(&format!("cas/{hex}"))).unwrap();
    let plan = tuna(&p, &["plan", "wf.yaml"]).ok();
    assert!(
        plan_line(&plan, "train").contains("output adapter/ missing on runner a100-box"),
        "{}",
        plan.stdout
    );
    let id = tuna(&p, &["run", "wf.yaml"]).ok().run_id();
    assert_eq!(p.step_status(&id, "train"), "passed");
    assert_eq!(p.read("trained.log").lines().count(), 2);
    assert!(a100.remote(&format!("cas/{hex}")).exists());
    // The producer made the same bytes, so its dependents' keys did not change.
    assert_eq!(p.step_status(&id, "merge"), "cached");

    // The host does not answer: plan says so, within its bounded wait, instead of hanging.
    a100.sshd.stop();
    let mut child = p.spawn(&["--runners", "runners.yaml", "plan", "wf.yaml"]);
    assert_eq!(wait_exit(&mut child), 0);
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("output adapter/ is kept on runner a100-box, which cannot be checked"),
        "{out}"
    );
}

#[test]
fn a_host_that_was_down_takes_steps_again_once_it_answers() {
    if skip() {
        return;
    }
    let mut a100 = Host::start("a100-box", "127.0.0.2", "a100", 1, 2.90);
    let p = Project::new();
    inventory(&p, &[&a100]);
    p.file(
        "wf.yaml",
        &format!(
            r#"
name: comeback
steps:
  train:
    runs-on: {{ gpu: a100 }}
    retry: {{ attempts: 2, backoff: 0s, on: [runner-lost] }}
    run: |
      echo "attempt $TUNA_ATTEMPT" >> {log}
      if [ "$TUNA_ATTEMPT" = 1 ]; then sleep 60; fi
      echo done > out.txt
    outputs: [out.txt]
  later:
    needs: [train]
    runs-on: a100-box
    run: cat ${{{{ steps.train.outputs.out.txt }}}}
"#,
            log = p.path("attempts").display()
        ),
    );
    let (mut child, id) = spawn(&p, &["run", "wf.yaml"]);
    wait_until(Duration::from_secs(20), "attempt 1 to start", || {
        p.read("attempts").contains("attempt 1")
    });
    a100.sshd.stop();
    // Attempt 1 is lost with its host; attempt 2 waits, as no other runner has an A100.
    wait_until(
        Duration::from_secs(30),
        "the retry to wait for the host",
        || {
            let status = p.status(&id);
            let train = step(&status, "train");
            train["status"] == "waiting"
                && train["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("`a100-box` is down"))
        },
    );
    a100.sshd.restart();
    assert_eq!(wait_exit(&mut child), 0);
    let status = p.status(&id);
    let train = step(&status, "train");
    assert_eq!(train["runner"], "a100-box");
    assert_eq!(train["attempt"], 2);
    assert_eq!(step(&status, "later")["runner"], "a100-box");
    assert_eq!(step(&status, "later")["status"], "passed");
    let logs = tuna(&p, &["logs", &id, "later"]).ok();
    assert_eq!(logs.stdout.trim(), "done");
    kill_attempt(&a100.remote(&format!("runs/{id}/train/1/pid")));
}

/// Stops an orphaned remote attempt (its process group).
fn kill_attempt(pid_file: &Path) {
    if let Ok(pid) = std::fs::read_to_string(pid_file)
        && let Ok(pgid) = pid.trim().parse::<i32>()
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
