//! A run seen and stopped from a second terminal: status and logs through the owner's control
//! socket, `tuna cancel`, Ctrl-C, and resume after either.

use std::process::Child;
use std::time::Duration;

use tuna_tests::{Project, alive, wait_exit, wait_until};

const WF: &str = r#"
name: long
steps:
  slow:
    run: |
      echo $$ > "$TUNA_PROJECT_DIR/slow.pid"
      echo started
      if [ ! -e "$TUNA_PROJECT_DIR/fast" ]; then sleep 300; fi
      echo finished
  quick:
    run: echo quick
  after:
    needs: [slow]
    run: touch "$TUNA_PROJECT_DIR/after-ran"
"#;

/// `tuna run wf.yaml`, started; the child and the run id it printed first.
fn run_held(p: &Project) -> (Child, String) {
    let mut cmd = p.tuna();
    cmd.args(["run", "wf.yaml"]);
    tuna_tests::spawn_for_id(cmd)
}

/// Starts `tuna run` and returns it with its run id, once `slow` is running.
fn start(p: &Project) -> (Child, String) {
    p.file("wf.yaml", WF);
    let (child, id) = run_held(p);
    wait_until(Duration::from_secs(20), "the slow step to start", || {
        p.path("slow.pid").exists()
    });
    (child, id)
}

#[test]
fn cancel_from_another_process_then_resume() {
    let p = Project::new();
    let (mut child, id) = start(&p);
    // status answered by the owner over its control socket
    wait_until(Duration::from_secs(10), "slow to be running", || {
        p.step_status(&id, "slow") == "running"
    });
    let second = p.run(&["run", "wf.yaml"]);
    assert_eq!(
        second.code, 3,
        "a second run in the same home is refused: {}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {}", child.id())),
        "{}",
        second.stderr
    );
    p.run(&["cancel", &id]).ok();
    assert_eq!(wait_exit(&mut child), 130);
    let pid: i32 = p.read("slow.pid").trim().parse().unwrap();
    wait_until(Duration::from_secs(10), "the step's process to end", || {
        !alive(pid)
    });
    assert_eq!(p.step_status(&id, "slow"), "cancelled");
    assert_eq!(p.status(&id)["status"], "cancelled");
    assert!(!p.path("after-ran").exists());
    p.file("fast", "");
    let r = p.run(&["resume", &id]).ok();
    assert_eq!(r.run_id(), id);
    assert_eq!(p.step_status(&id, "slow"), "passed");
    assert_eq!(p.step_status(&id, "quick"), "passed");
    assert!(p.path("after-ran").exists());
    assert_eq!(p.status(&id)["status"], "passed");
}

/// A run whose tuna was killed before its store held the step's launch (a local launch is
/// recorded in the run's journal; the store hears of it later): `tuna cancel` finds the step
/// in the journal and stops it.
#[test]
fn cancel_of_a_run_whose_tuna_was_killed_stops_the_step_it_launched() {
    let p = Project::new();
    let (mut child, id) = start(&p);
    child.kill().unwrap();
    child.wait().unwrap();
    let out = p.run(&["cancel", &id]).ok();
    assert!(
        out.stdout.contains("(1 running steps stopped)"),
        "{}",
        out.stdout
    );
    let pid: i32 = p.read("slow.pid").trim().parse().unwrap();
    wait_until(Duration::from_secs(10), "the step's process to end", || {
        !alive(pid)
    });
    assert_eq!(p.step_status(&id, "slow"), "cancelled");
    assert_eq!(p.status(&id)["status"], "cancelled");
}

#[test]
fn ctrl_c_interrupts_cleanly_and_resume_last_finishes() {
    let p = Project::new();
    let (mut child, id) = start(&p);
    wait_until(Duration::from_secs(10), "slow to be running", || {
        p.step_status(&id, "slow") == "running"
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(wait_exit(&mut child), 130);
    let pid: i32 = p.read("slow.pid").trim().parse().unwrap();
    wait_until(Duration::from_secs(10), "the step's process to end", || {
        !alive(pid)
    });
    assert_eq!(p.status(&id)["status"], "interrupted");
    p.file("fast", "");
    p.run(&["resume", "--last"]).ok();
    assert_eq!(p.status(&id)["status"], "passed");
}

/// Kills the run's tuna (SIGKILL: no chance to clean up), leaves `step`'s record as a kill
/// between a remote launch and the store's record of its handle leaves it (a kill soon after
/// the launch often does so itself): the launch recorded (`launching`, its attempt and runner)
/// and no handle; then `tuna cancel` (run by `tuna`) must find the step and stop it.
pub(super) fn kill_lose_the_handle_and_cancel(
    mut child: Child,
    p: &Project,
    run: &str,
    step: &str,
    tuna: impl Fn(&[&str]) -> tuna_tests::Run,
) {
    child.kill().unwrap();
    child.wait().unwrap();
    {
        let store = tuna::store::Store::open(&p.home().join("db")).expect("the store");
        let mut rec = store.step(run, step).unwrap().expect("the step's record");
        assert_eq!(rec.attempts.len(), 1, "{step}'s launch was not recorded");
        rec.status = tuna::store::StepStatus::Launching;
        rec.handle = None;
        store.put_step(&rec).unwrap();
        store.flush().unwrap();
    }
    let out = tuna(&["cancel", run]).ok();
    assert!(
        out.stdout.contains("(1 running steps stopped)"),
        "{}",
        out.stdout
    );
}

/// Starts a run of one step `s` that prints `one`, waits for the file `go` in the project,
/// then prints `two`; the run and its id, once `s` is running.
pub(super) fn start_held(p: &Project) -> (Child, String) {
    p.file(
        "wf.yaml",
        r#"
name: follow
steps:
  s:
    run: |
      echo one
      while [ ! -e "$TUNA_PROJECT_DIR/go" ]; do sleep 0.05; done
      echo two
"#,
    );
    let (child, id) = run_held(p);
    wait_until(Duration::from_secs(20), "s to be running", || {
        p.step_status(&id, "s") == "running"
    });
    (child, id)
}

#[test]
fn logs_follow_a_running_step() {
    let p = Project::new();
    let (mut child, id) = start_held(&p);
    let follower = p
        .tuna()
        .args(["logs", &id, "s", "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    p.file("go", "");
    let out = follower.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "one\ntwo\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(wait_exit(&mut child), 0);
}
