//! The local runner driven through the `Runner` trait, with the real shim binary starting the
//! supervisor.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tuna_runners::local::{LocalConfig, LocalRunner, ProcId, journal, layout};
use tuna_runners::{Gpu, Handle, Job, Outcome, Runner};

const SHIM: &str = env!("CARGO_BIN_EXE_tuna-shim-test");

fn runner() -> LocalRunner {
    runner_with_grace(Duration::from_millis(200))
}

/// A runner whose jobs get `kill_grace` between SIGTERM and SIGKILL.
fn runner_with_grace(kill_grace: Duration) -> LocalRunner {
    LocalRunner::new(LocalConfig {
        name: "local".into(),
        slots: 2,
        gpus: vec![],
        shim: SHIM.into(),
        kill_grace,
        ..LocalConfig::default()
    })
}

/// Long enough that a test passing within it shows SIGTERM did the work, not SIGKILL.
const LONG_GRACE: Duration = Duration::from_secs(120);

/// The attempt folder of step `name`, shaped as tuna makes them (`RUN/STEP/ATTEMPT`: the run's
/// journal goes in `RUN`).
fn attempt(tmp: &TempDir, name: &str) -> PathBuf {
    tmp.path().join("run-1").join(name).join("1")
}

fn job(tmp: &TempDir, name: &str, script: &str) -> Job {
    let attempt_dir = attempt(tmp, name);
    std::fs::create_dir_all(&attempt_dir).unwrap();
    Job {
        run_id: "run-1".into(),
        step: name.into(),
        attempt: 1,
        script: script.into(),
        env: Default::default(),
        attempt_dir,
        timeout: None,
        wait_for_capacity: None,
        resources: Default::default(),
        stage: Vec::new(),
        outputs: Vec::new(),
        secrets: Vec::new(),
        workdir: None,
    }
}

async fn run(job: &Job) -> Outcome {
    let runner = runner();
    let handle = runner.launch(job).await.unwrap();
    runner.watch(&handle).await.unwrap()
}

fn read_optional(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// Waits for `cond` to hold, failing after `limit`.
fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `pid` is gone (no process, or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat[stat.rfind(')').unwrap() + 1..]
            .trim_start()
            .starts_with('Z'),
    }
}

fn waiter_of(handle: &Handle) -> ProcId {
    serde_json::from_value(handle.data.clone()).unwrap()
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let tmp = TempDir::new().unwrap();
    let cases = [
        ("ok", "true", Outcome::Exited { code: 0 }),
        ("three", "exit 3", Outcome::Exited { code: 3 }),
        (
            "errexit",
            "false; echo unreachable",
            Outcome::Exited { code: 1 },
        ),
        ("pipefail", "false | true", Outcome::Exited { code: 1 }),
        (
            "nounset",
            "echo \"$TUNA_NOT_SET_ANYWHERE\"",
            Outcome::Exited { code: 1 },
        ),
        ("killed", "kill -KILL $$", Outcome::Signaled { signal: 9 }),
    ];
    for (name, script, expected) in cases {
        assert_eq!(
            run(&job(&tmp, name, script)).await,
            expected,
            "{name}: {script}"
        );
    }
    let record = journal::exit_of(&attempt(&tmp, "three")).unwrap().unwrap();
    assert!(record.started_ms <= record.ended_ms);
    assert!(record.child_pid.is_some());
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let tmp = TempDir::new().unwrap();
    let mut job = job(
        &tmp,
        "slow",
        "sleep 1000 & echo $! > bg.pid; sleep 1000; wait",
    );
    job.timeout = Some(Duration::from_millis(300));
    let runner = runner_with_grace(LONG_GRACE);
    let handle = runner.launch(&job).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), runner.watch(&handle)).await;
    assert_eq!(
        outcome.expect("SIGTERM did not stop the group").unwrap(),
        Outcome::TimedOut
    );
    let grandchild: u32 = read(job.attempt_dir.join("work/bg.pid"))
        .trim()
        .parse()
        .unwrap();
    let child = journal::exit_of(&job.attempt_dir)
        .unwrap()
        .unwrap()
        .child_pid
        .unwrap();
    wait_until(
        "the background sleep is gone",
        Duration::from_secs(5),
        || gone(grandchild),
    );
    assert!(gone(child));
}

#[tokio::test]
async fn what_the_script_leaves_running_is_killed_when_it_ends() {
    let tmp = TempDir::new().unwrap();
    let job = job(&tmp, "leaver", "sleep 1000 & echo $! > bg.pid");
    assert_eq!(run(&job).await, Outcome::Exited { code: 0 });
    let grandchild: u32 = read(job.attempt_dir.join("work/bg.pid"))
        .trim()
        .parse()
        .unwrap();
    wait_until(
        "the background sleep is gone",
        Duration::from_secs(5),
        || gone(grandchild),
    );
}

#[tokio::test]
async fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
    let tmp = TempDir::new().unwrap();
    let mut job = job(&tmp, "stubborn", "trap '' TERM; sleep 1000");
    job.timeout = Some(Duration::from_millis(100));
    assert_eq!(run(&job).await, Outcome::TimedOut);
}

#[tokio::test]
async fn cancel_stops_the_job() {
    let tmp = TempDir::new().unwrap();
    for (name, script) in [
        ("polite", "sleep 1000"),
        ("stubborn", "trap '' TERM; sleep 1000"),
    ] {
        let job = job(&tmp, name, script);
        let runner = runner();
        let handle = runner.launch(&job).await.unwrap();
        runner.cancel(&handle).await.unwrap();
        assert_eq!(
            runner.watch(&handle).await.unwrap(),
            Outcome::Cancelled,
            "{name}"
        );
        let child = journal::exit_of(&job.attempt_dir)
            .unwrap()
            .unwrap()
            .child_pid;
        if let Some(child) = child {
            assert!(gone(child), "{name}: the script survived");
        }
    }
}

#[tokio::test]
async fn cancel_sends_sigterm_to_the_script() {
    let tmp = TempDir::new().unwrap();
    let job = job(
        &tmp,
        "trapper",
        "trap 'echo terminated > ../term; exit 0' TERM; touch ../ready; sleep 1000 & wait",
    );
    let runner = runner_with_grace(LONG_GRACE);
    let handle = runner.launch(&job).await.unwrap();
    let ready = job.attempt_dir.join("ready");
    wait_until("the trap is set", Duration::from_secs(10), || {
        ready.exists()
    });
    runner.cancel(&handle).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), runner.watch(&handle)).await;
    assert_eq!(
        outcome.expect("SIGTERM did not reach the script").unwrap(),
        Outcome::Cancelled
    );
    assert_eq!(read(job.attempt_dir.join("term")), "terminated\n");
}

#[tokio::test]
async fn environment_gpus_and_working_directory() {
    let tmp = TempDir::new().unwrap();
    let script =
        "echo \"$GREETING\" > greeting; pwd > cwd; echo \"${CUDA_VISIBLE_DEVICES-unset}\" > gpus";
    let mut with_gpus = job(&tmp, "gpus", script);
    with_gpus
        .env
        .insert("GREETING".into(), "hello world".into());
    with_gpus.resources.gpus = vec![
        Gpu {
            kind: "a100".into(),
            index: 0,
        },
        Gpu {
            kind: "a100".into(),
            index: 2,
        },
    ];
    assert!(run(&with_gpus).await.success());
    let work = with_gpus.attempt_dir.join(layout::WORK_DIR);
    assert_eq!(read(work.join("greeting")), "hello world\n");
    assert_eq!(
        PathBuf::from(read(work.join("cwd")).trim()),
        work.canonicalize().unwrap()
    );
    assert_eq!(read(work.join("gpus")), "0,2\n");

    let mut without = job(&tmp, "no-gpus", script);
    without.env.insert("GREETING".into(), "hi".into());
    assert!(run(&without).await.success());
    assert_eq!(read(without.attempt_dir.join("work/gpus")), "\n");
}

#[tokio::test]
async fn output_goes_to_log_files() {
    let tmp = TempDir::new().unwrap();
    let job = job(&tmp, "logs", "echo to-out; echo to-err >&2; echo more-out");
    assert!(run(&job).await.success());
    assert_eq!(
        read(job.attempt_dir.join(layout::STDOUT_LOG)),
        "to-out\nmore-out\n"
    );
    assert_eq!(read(job.attempt_dir.join(layout::STDERR_LOG)), "to-err\n");
}

#[tokio::test]
async fn launching_an_attempt_twice_runs_it_once() {
    let tmp = TempDir::new().unwrap();
    let job = job(&tmp, "once", "echo ran >> ../count");
    let runner = runner();
    let first = runner.launch(&job).await.unwrap();
    assert!(runner.watch(&first).await.unwrap().success());
    let again = runner.launch(&job).await.unwrap();
    assert_eq!(again, first);
    assert!(runner.watch(&again).await.unwrap().success());
    assert_eq!(read(job.attempt_dir.join("count")), "ran\n");

    let job = crate::job(&tmp, "racing", "echo ran >> ../count");
    let (a, b) = tokio::join!(runner.launch(&job), runner.launch(&job));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    let (a, b) = tokio::join!(runner.watch(&a), runner.watch(&b));
    assert!(a.unwrap().success() && b.unwrap().success());
    assert_eq!(read(job.attempt_dir.join("count")), "ran\n");
}

#[tokio::test]
async fn a_restarted_runner_adopts_a_running_job() {
    let tmp = TempDir::new().unwrap();
    let gate = tmp.path().join("gate");
    let status = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap();
    assert!(status.success());
    let mut job = job(&tmp, "adopted", "read -r _ < \"$GATE\"; exit 7");
    job.env.insert("GATE".into(), gate.display().to_string());
    let handle = {
        let first = runner();
        first.launch(&job).await.unwrap()
    };
    let second = runner();
    let watching = second.watch(&handle);
    tokio::pin!(watching);
    // The job waits at the gate, so the watch cannot end yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut watching)
            .await
            .is_err()
    );
    tokio::task::spawn_blocking(move || std::fs::write(gate, "go\n"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(watching.await.unwrap(), Outcome::Exited { code: 7 });
}

#[tokio::test]
async fn a_restarted_runner_reads_how_a_finished_job_ended() {
    let tmp = TempDir::new().unwrap();
    // Watched to the end by the first runner.
    let job_a = job(&tmp, "watched", "exit 5");
    let first = runner();
    let handle = first.launch(&job_a).await.unwrap();
    assert_eq!(
        first.watch(&handle).await.unwrap(),
        Outcome::Exited { code: 5 }
    );
    assert_eq!(
        runner().watch(&handle).await.unwrap(),
        Outcome::Exited { code: 5 }
    );

    // Finished while no runner watched.
    let job_b = job(&tmp, "unwatched", "exit 4");
    let handle = runner().launch(&job_b).await.unwrap();
    wait_until("the job has ended", Duration::from_secs(10), || {
        journal::exit_of(&job_b.attempt_dir).unwrap().is_some()
    });
    assert_eq!(
        runner().watch(&handle).await.unwrap(),
        Outcome::Exited { code: 4 }
    );
}

#[tokio::test]
async fn a_waiter_killed_without_a_record_is_lost_and_its_job_stopped() {
    let tmp = TempDir::new().unwrap();
    let job = job(&tmp, "orphan", "echo $$ > ../script.pid; sleep 1000");
    let runner = runner();
    let handle = runner.launch(&job).await.unwrap();
    let pid_file = job.attempt_dir.join("script.pid");
    wait_until("the script started", Duration::from_secs(10), || {
        read_optional(&pid_file).is_some_and(|s| s.ends_with('\n'))
    });
    let script: u32 = read(&pid_file).trim().parse().unwrap();
    // SAFETY: SIGKILL to the waiter of this test's job.
    unsafe { libc::kill(waiter_of(&handle).pid as i32, libc::SIGKILL) };
    match runner.watch(&handle).await.unwrap() {
        Outcome::Lost { reason } => assert!(reason.contains("without recording"), "{reason}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    wait_until(
        "the orphaned script is gone",
        Duration::from_secs(5),
        || gone(script),
    );
}

#[tokio::test]
async fn launch_reports_a_shim_that_did_not_claim() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new().unwrap();
    let failing = tmp.path().join("failing-shim");
    std::fs::write(&failing, "#!/bin/sh\necho 'error tuna-shim: it broke'\n").unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (shim, expected) in [
        (failing, "it broke"),
        (PathBuf::from("/bin/true"), "could not start the supervisor"),
    ] {
        let runner = LocalRunner::new(LocalConfig {
            shim,
            ..LocalConfig::default()
        });
        let err = runner
            .launch(&job(&tmp, "never", "true"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[tokio::test]
async fn a_handle_whose_pid_was_reused_is_not_waited_for() {
    let tmp = TempDir::new().unwrap();
    let me = ProcId::current().unwrap();
    let handle = Handle {
        runner: "local".into(),
        attempt_dir: tmp.path().to_path_buf(),
        data: serde_json::to_value(ProcId {
            start_time: me.start_time + 1,
            ..me
        })
        .unwrap(),
    };
    assert!(matches!(
        runner().watch(&handle).await.unwrap(),
        Outcome::Lost { .. }
    ));
}

#[tokio::test]
async fn check_reports_a_missing_shim() {
    assert!(runner().check().await.unwrap().reachable);
    let broken = LocalRunner::new(LocalConfig {
        shim: "/nonexistent/tuna-shim".into(),
        ..LocalConfig::default()
    });
    let info = broken.check().await.unwrap();
    assert!(!info.reachable);
    assert!(
        info.detail.contains("/nonexistent/tuna-shim"),
        "{}",
        info.detail
    );
}

/// A runner whose supervisor lives in `dir` (as a home's does).
fn runner_in(dir: &Path) -> LocalRunner {
    LocalRunner::new(LocalConfig {
        shim: SHIM.into(),
        kill_grace: Duration::from_millis(200),
        supervisor_dir: Some(dir.to_path_buf()),
        ..LocalConfig::default()
    })
}

/// The pid the live supervisor of `dir` wrote in its lock file.
fn supervisor_pid(dir: &Path) -> u32 {
    read(dir.join(tuna_runners::local::daemon::LOCK))
        .trim()
        .parse()
        .unwrap()
}

/// The parent of `pid`, from /proc.
fn parent_of(pid: u32) -> u32 {
    let stat = read(format!("/proc/{pid}/stat"));
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn one_supervisor_serves_every_runner_of_a_home_and_forks_each_waiter() {
    let tmp = TempDir::new().unwrap();
    let sup = tmp.path().join("supervisor");
    let gate = tmp.path().join("gate");
    let mut a = job(&tmp, "a", "while [ ! -e \"$GATE\" ]; do sleep 0.01; done");
    a.env.insert("GATE".into(), gate.display().to_string());
    let mut b = a.clone();
    b.attempt_dir = attempt(&tmp, "b");
    std::fs::create_dir_all(&b.attempt_dir).unwrap();
    let (first, second) = (runner_in(&sup), runner_in(&sup));
    let ha = first.launch(&a).await.unwrap();
    let hb = second.launch(&b).await.unwrap();
    let pid = supervisor_pid(&sup);
    // Both waiters are children of the one supervisor, not of this process.
    assert_eq!(parent_of(waiter_of(&ha).pid), pid);
    assert_eq!(parent_of(waiter_of(&hb).pid), pid);
    assert_ne!(waiter_of(&ha), waiter_of(&hb));
    std::fs::write(&gate, "").unwrap();
    assert!(first.watch(&ha).await.unwrap().success());
    assert!(second.watch(&hb).await.unwrap().success());
    assert_eq!(supervisor_pid(&sup), pid);
    // The folder is private: it holds the socket that starts commands.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test]
async fn a_killed_supervisor_loses_no_running_job_and_a_new_one_takes_over() {
    let tmp = TempDir::new().unwrap();
    let sup = tmp.path().join("supervisor");
    let gate = tmp.path().join("gate");
    let mut job = job(
        &tmp,
        "survivor",
        "while [ ! -e \"$GATE\" ]; do sleep 0.01; done; echo ran >> ../count; exit 3",
    );
    job.env.insert("GATE".into(), gate.display().to_string());
    let runner = runner_in(&sup);
    let handle = runner.launch(&job).await.unwrap();
    let old = supervisor_pid(&sup);
    // SAFETY: SIGKILL to the supervisor this test started.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    wait_until("the supervisor is gone", Duration::from_secs(10), || {
        gone(old)
    });
    std::fs::write(&gate, "").unwrap();
    // The waiter outlived its supervisor and recorded how the job ended.
    assert_eq!(
        runner.watch(&handle).await.unwrap(),
        Outcome::Exited { code: 3 }
    );
    assert_eq!(read(job.attempt_dir.join("count")), "ran\n");
    // That waiter takes no more launches (its supervisor is gone): the next launch starts a
    // new supervisor in the same folder.
    let next = crate::job(&tmp, "next", "exit 0");
    let h = runner.launch(&next).await.unwrap();
    assert_ne!(waiter_of(&h), waiter_of(&handle));
    assert!(runner.watch(&h).await.unwrap().success());
    assert_ne!(supervisor_pid(&sup), old);
}

#[tokio::test]
async fn an_idle_supervisor_exits_and_removes_its_socket() {
    let tmp = TempDir::new().unwrap();
    let sup = tmp.path().join("supervisor");
    let mut config = runner_in(&sup).config().clone();
    // The supervisor takes its idle time from the environment it is started with.
    config
        .base_env
        .insert("TUNA_SUPERVISOR_IDLE_MS".into(), "50".into());
    let runner = LocalRunner::new(config);
    let job = job(&tmp, "short", "exit 0");
    let handle = runner.launch(&job).await.unwrap();
    let pid = supervisor_pid(&sup);
    assert!(runner.watch(&handle).await.unwrap().success());
    wait_until("the idle supervisor exits", Duration::from_secs(10), || {
        gone(pid)
    });
    assert!(!sup.join(tuna_runners::local::daemon::SOCKET).exists());
    // And a later launch starts another.
    let again = crate::job(&tmp, "again", "exit 0");
    let h = runner.launch(&again).await.unwrap();
    assert!(runner.watch(&h).await.unwrap().success());
    assert_ne!(supervisor_pid(&sup), pid);
}

#[tokio::test]
async fn a_home_deeper_than_a_socket_address_allows_still_runs_steps() {
    let tmp = TempDir::new().unwrap();
    // Over 108 bytes: too long for a unix socket's address.
    let sup = tmp
        .path()
        .join("d".repeat(60))
        .join("e".repeat(60))
        .join("supervisor");
    assert!(sup.join("sock").as_os_str().len() > 108);
    let runner = runner_in(&sup);
    let job = job(&tmp, "deep", "exit 6");
    let handle = runner.launch(&job).await.unwrap();
    assert_eq!(
        runner.watch(&handle).await.unwrap(),
        Outcome::Exited { code: 6 }
    );
    assert!(sup.join(tuna_runners::local::daemon::SOCKET).exists());
}

/// A runner of a private supervisor in `tmp` that has run one short step: its handle (the
/// waiter that ran it is idle now).
async fn after_one_step(tmp: &TempDir, name: &str) -> (LocalRunner, Handle) {
    let runner = runner_in(&tmp.path().join("supervisor"));
    let first = job(tmp, name, "true");
    let handle = runner.launch(&first).await.unwrap();
    assert!(runner.watch(&handle).await.unwrap().success());
    (runner, handle)
}

/// The signals a step's command gets back at their default disposition (bit `n - 1` of
/// `/proc/PID/status`'s masks is signal `n`): SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2,
/// SIGPIPE, SIGTERM, SIGCHLD.
const RESET_SIGNALS: u64 =
    (1 << 0) | (1 << 1) | (1 << 2) | (1 << 9) | (1 << 11) | (1 << 12) | (1 << 14) | (1 << 16);

/// A command started directly (no bash between) has a process group of its own, no blocked
/// signal (the waiter blocks those it reads from a signalfd), none of the reset signals
/// ignored (the Rust runtime ignores SIGPIPE), and /dev/null as its input.
#[tokio::test]
async fn a_command_gets_its_own_group_no_blocked_signal_and_null_input() {
    let tmp = TempDir::new().unwrap();
    let state = job(&tmp, "state", "cat /proc/self/status /proc/self/stat");
    assert!(run(&state).await.success());
    let out = read(state.attempt_dir.join(layout::STDOUT_LOG));
    let mask = |name: &str| {
        let hex = out.lines().find_map(|l| l.strip_prefix(name)).unwrap();
        u64::from_str_radix(hex.trim(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{out}");
    assert_eq!(mask("SigIgn:") & RESET_SIGNALS, 0, "{out}");
    // `/proc/PID/stat`: "PID (COMM) STATE PPID PGRP ...".
    let stat = out.lines().last().unwrap();
    let pid = stat.split(' ').next().unwrap();
    let pgrp = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(2)
        .unwrap();
    assert_eq!(pgrp, pid, "{stat}");

    let input = job(&tmp, "input", "readlink /proc/self/fd/0");
    assert!(run(&input).await.success());
    assert_eq!(
        read(input.attempt_dir.join(layout::STDOUT_LOG)),
        "/dev/null\n"
    );
}

/// A command whose exec fails: not found exits 127 as in bash; another reason (a symlink
/// loop) loses the attempt with the reason. The waiter goes on with its next step.
#[tokio::test]
async fn a_command_that_cannot_be_executed_says_why_and_the_waiter_goes_on() {
    let tmp = TempDir::new().unwrap();
    let runner = runner_in(&tmp.path().join("supervisor"));
    let missing = job(&tmp, "missing", "./no-such-program --flag");
    let handle = runner.launch(&missing).await.unwrap();
    assert_eq!(
        runner.watch(&handle).await.unwrap(),
        Outcome::Exited { code: 127 }
    );
    let stderr = read(missing.attempt_dir.join(layout::STDERR_LOG));
    assert!(
        stderr.contains("./no-such-program: command not found"),
        "{stderr}"
    );

    let looping = job(&tmp, "loop", "./loop");
    let work = looping.attempt_dir.join(layout::WORK_DIR);
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink("loop", work.join("loop")).unwrap();
    let handle = runner.launch(&looping).await.unwrap();
    match runner.watch(&handle).await.unwrap() {
        Outcome::Lost { reason } => assert!(
            reason.contains("cannot start ./loop") && reason.contains("symbolic links"),
            "{reason}"
        ),
        other => panic!("expected a lost attempt, got {other:?}"),
    }

    let next = job(&tmp, "next", "true");
    let next_handle = runner.launch(&next).await.unwrap();
    assert!(runner.watch(&next_handle).await.unwrap().success());
    assert_eq!(waiter_of(&handle), waiter_of(&next_handle));
}

#[tokio::test]
async fn a_waiter_runs_one_step_after_another_and_a_silent_step_makes_no_log_file() {
    let tmp = TempDir::new().unwrap();
    let (runner, h1) = after_one_step(&tmp, "first").await;
    let first = job(&tmp, "first", "true");
    let second = job(&tmp, "second", "exit 7");
    let h2 = runner.launch(&second).await.unwrap();
    assert_eq!(
        runner.watch(&h2).await.unwrap(),
        Outcome::Exited { code: 7 }
    );
    // The idle waiter took the second step: no new process was forked for it.
    assert_eq!(waiter_of(&h1), waiter_of(&h2));
    assert!(
        waiter_of(&h1).is_running(),
        "the waiter waits for the next step"
    );
    for dir in [&first.attempt_dir, &second.attempt_dir] {
        assert!(!dir.join(layout::STDOUT_LOG).exists());
        assert!(!dir.join(layout::STDERR_LOG).exists());
    }
    // Both outcomes are in the run's journal.
    let code = |j: &Job| journal::exit_of(&j.attempt_dir).unwrap().unwrap().outcome;
    assert_eq!(code(&second), Outcome::Exited { code: 7 });
    assert!(code(&first).success());
}

#[tokio::test]
async fn a_cancel_meant_for_an_earlier_step_does_not_stop_the_waiters_next_one() {
    let tmp = TempDir::new().unwrap();
    let (runner, h1) = after_one_step(&tmp, "early").await;
    let gate = tmp.path().join("gate");
    let mut next = job(
        &tmp,
        "next",
        "touch ../started; while [ ! -e \"$GATE\" ]; do sleep 0.01; done; exit 4",
    );
    next.env.insert("GATE".into(), gate.display().to_string());
    let h2 = runner.launch(&next).await.unwrap();
    assert_eq!(waiter_of(&h1), waiter_of(&h2));
    let started = next.attempt_dir.join("started");
    wait_until("the next step runs", Duration::from_secs(10), || {
        started.exists()
    });
    // A late cancel of the finished step signals the same waiter.
    runner.cancel(&h1).await.unwrap();
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        runner.watch(&h2).await.unwrap(),
        Outcome::Exited { code: 4 }
    );
}

#[tokio::test]
async fn an_idle_waiter_told_to_stop_exits_and_the_next_launch_still_runs() {
    let tmp = TempDir::new().unwrap();
    let (runner, h1) = after_one_step(&tmp, "first").await;
    let waiter = waiter_of(&h1);
    // SAFETY: SIGTERM to the idle waiter this test's supervisor forked.
    unsafe { libc::kill(waiter.pid as i32, libc::SIGTERM) };
    // It takes the signal at its next job, leaves that connection unanswered and exits; the
    // launcher launches again and another waiter runs the step once.
    let second = job(&tmp, "second", "echo ran >> ../count");
    let h2 = runner.launch(&second).await.unwrap();
    assert!(runner.watch(&h2).await.unwrap().success());
    assert_eq!(read(second.attempt_dir.join("count")), "ran\n");
    assert_ne!(waiter_of(&h2), waiter);
    wait_until("the told waiter exits", Duration::from_secs(10), || {
        gone(waiter.pid)
    });
}

#[tokio::test]
async fn a_step_that_prints_megabytes_on_both_streams_is_not_held_up_by_its_pipes() {
    let tmp = TempDir::new().unwrap();
    // Far more than a pipe holds (64 KiB): the waiter must drain both while the script runs.
    let mut job = job(
        &tmp,
        "loud",
        "for i in $(seq 1 20000); do echo \"line $i of out with $SECRET\"; echo \"line $i of err\" >&2; done",
    );
    job.env.insert("SECRET".into(), "hunter2-hunter2".into());
    job.secrets = vec!["SECRET".into()];
    let outcome = tokio::time::timeout(Duration::from_secs(60), run(&job)).await;
    assert!(outcome.expect("the step was held up").success());
    let out = read(job.attempt_dir.join(layout::STDOUT_LOG));
    let err = read(job.attempt_dir.join(layout::STDERR_LOG));
    assert_eq!(out.lines().count(), 20000);
    assert_eq!(err.lines().count(), 20000);
    assert!(out.ends_with("line 20000 of out with ***\n"));
    assert!(!out.contains("hunter2-hunter2"));
}

#[tokio::test]
async fn a_runner_keeps_its_waiter_for_the_next_launch_and_goes_to_the_supervisor_once_it_is_gone()
{
    let tmp = TempDir::new().unwrap();
    let mut config = runner_in(&tmp.path().join("supervisor")).config().clone();
    config.base_env.insert("FROM_BASE".into(), "kept".into());
    let runner = LocalRunner::new(config);
    let first = job(&tmp, "first", "exit 0");
    let h1 = runner.launch(&first).await.unwrap();
    assert!(runner.watch(&h1).await.unwrap().success());
    // The next launch goes over the same connection to the same waiter, which still has the
    // base environment the first launch brought.
    let second = job(
        &tmp,
        "second",
        "[ \"$FROM_BASE\" = kept ] || exit 9; exit 4",
    );
    let h2 = runner.launch(&second).await.unwrap();
    assert_eq!(waiter_of(&h2), waiter_of(&h1));
    assert_eq!(
        runner.watch(&h2).await.unwrap(),
        Outcome::Exited { code: 4 }
    );
    // A kept waiter that died claimed nothing: the launch goes to the supervisor's next one.
    let kept = waiter_of(&h2).pid;
    // SAFETY: SIGKILL to the waiter this test's runner keeps.
    unsafe { libc::kill(kept as i32, libc::SIGKILL) };
    wait_until("the kept waiter is gone", Duration::from_secs(10), || {
        gone(kept)
    });
    let third = job(&tmp, "third", "echo once >> ../count");
    let h3 = runner.launch(&third).await.unwrap();
    assert_ne!(waiter_of(&h3).pid, kept);
    assert!(runner.watch(&h3).await.unwrap().success());
    assert_eq!(read(third.attempt_dir.join("count")), "once\n");
}
