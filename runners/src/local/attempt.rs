//! A waiter's work once it owns an attempt: run the script in its own process group, enforce
//! the timeout and cancellation (SIGTERM to the group, a grace period, SIGKILL), clean up
//! what the script left behind, and produce the [`ExitRecord`].

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::exit_record::ExitRecord;
use super::layout;
use super::log_pump;
use super::signals::Signals;
use super::spec::LaunchSpec;
use crate::Outcome;

/// Runs the attempt in `dir` to its end and says how it ended.
pub(crate) fn supervise(dir: &Path, spec: &LaunchSpec, signals: &Signals) -> ExitRecord {
    let started_ms = unix_ms();
    let finish = |outcome, child_pid| ExitRecord {
        outcome,
        started_ms,
        ended_ms: unix_ms(),
        child_pid,
    };
    if dir.join(layout::CANCEL).exists() {
        return finish(Outcome::Cancelled, None);
    }
    // Orphans of the script's group come to us, so we can reap them before reporting.
    // SAFETY: prctl with an integer option and flag.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let child = match spawn_script(dir, spec) {
        Ok(child) => child,
        Err((program, e)) if program != "bash" && direct_exit_code(&e).is_some() => {
            // As bash reports a program it cannot run.
            let code = direct_exit_code(&e).unwrap_or(127);
            let what = if code == 127 {
                "command not found".to_string()
            } else {
                e.to_string()
            };
            let _ = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(layout::STDERR_LOG))
                .and_then(|mut f| writeln!(f, "bash: line 1: {program}: {what}"));
            return finish(Outcome::Exited { code }, None);
        }
        Err((program, e)) => return finish(lost(format!("cannot start {program}: {e}")), None),
    };
    let mut child = child;
    let pumps = if spec.job.secret_values().is_empty() {
        None
    } else {
        match log_pump::Pumps::start(&mut child, dir, &spec.job.secret_values()) {
            Ok(p) => Some(p),
            Err(e) => {
                kill_group(child.id(), libc::SIGKILL);
                reap(child.id());
                return finish(lost(format!("cannot open the logs: {e}")), None);
            }
        }
    };
    let pid = child.id();
    let stop = wait_for_exit(pid, spec.job.timeout, spec.kill_grace(), signals);
    // The script's process is a zombie now (waited for without reaping), so its pid, which
    // names its process group, cannot be reused yet: kill what is left of the group, then reap.
    kill_group(pid, libc::SIGKILL);
    let status = reap(pid);
    reap_group(pid);
    if let Some(p) = pumps {
        p.finish(Duration::from_secs(2));
    }
    let outcome = match stop {
        Stop::Signal(_) if dir.join(layout::CANCEL).exists() => Outcome::Cancelled,
        Stop::TimedOut => Outcome::TimedOut,
        _ => outcome_of(status),
    };
    finish(outcome, Some(pid))
}

fn lost(reason: String) -> Outcome {
    Outcome::Lost { reason }
}

/// The exit code bash gives a command it cannot run: 127 not found, 126 not executable.
fn direct_exit_code(e: &io::Error) -> Option<i32> {
    match e.kind() {
        io::ErrorKind::NotFound => Some(127),
        io::ErrorKind::PermissionDenied => Some(126),
        _ => None,
    }
}

/// Whether an environment variable (or, for a name ending in `_`, any with that prefix) is
/// set for the script.
fn env_has(spec: &LaunchSpec, key: &str) -> bool {
    let (job, base) = (&spec.job.env, &spec.base_env);
    if key.ends_with('_') {
        job.keys().chain(base.keys()).any(|k| k.starts_with(key))
    } else {
        job.contains_key(key) || base.contains_key(key)
    }
}

/// Spawns the script (directly when it is one simple command, else under bash); on failure,
/// the program that could not start.
fn spawn_script(dir: &Path, spec: &LaunchSpec) -> Result<Child, (String, io::Error)> {
    let direct = super::direct::simple_argv(&spec.job.script, &|k| env_has(spec, k));
    let program = direct
        .as_ref()
        .map_or("bash".to_string(), |argv| argv[0].clone());
    spawn_inner(dir, spec, direct).map_err(|e| (program, e))
}

fn spawn_inner(dir: &Path, spec: &LaunchSpec, direct: Option<Vec<String>>) -> io::Result<Child> {
    let job = &spec.job;
    let append = |name| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    let work = dir.join(layout::WORK_DIR);
    let mut command = match &direct {
        Some(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]).env("PWD", &work);
            c
        }
        None => {
            let mut c = Command::new("bash");
            c.args(["-euo", "pipefail", "-c", &job.script]);
            c
        }
    };
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions on a local signal set.
    unsafe {
        command.pre_exec(|| {
            // The shim blocks the signals it waits for; the script must get them.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        })
    };
    command
        .current_dir(&work)
        .env_clear()
        .envs(&spec.base_env)
        .envs(&job.env)
        .env("CUDA_VISIBLE_DEVICES", job.resources.cuda_visible_devices())
        .stdin(Stdio::null());
    if job.secret_values().is_empty() {
        command
            .stdout(append(layout::STDOUT_LOG)?)
            .stderr(append(layout::STDERR_LOG)?);
    } else {
        // Through the waiter, which masks the secrets (see `log_pump`).
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    command.process_group(0).spawn()
}

/// What ended the wait besides the script itself.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    None,
    TimedOut,
    Signal(i32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Running,
    Terminating,
    Killed,
}

/// Waits until the script's process has exited, without reaping it. Past the timeout, or on a
/// stop signal, sends SIGTERM to its group and SIGKILL after `grace`.
fn wait_for_exit(pid: u32, timeout: Option<Duration>, grace: Duration, signals: &Signals) -> Stop {
    let mut stop = Stop::None;
    let mut stage = Stage::Running;
    let mut wake = timeout.map(|t| Instant::now() + t);
    loop {
        if has_exited(pid) {
            return stop;
        }
        let now = Instant::now();
        if wake.is_some_and(|at| at <= now) {
            match stage {
                Stage::Running => {
                    stop = Stop::TimedOut;
                    kill_group(pid, libc::SIGTERM);
                    stage = Stage::Terminating;
                    wake = Some(now + grace);
                }
                Stage::Terminating | Stage::Killed => {
                    kill_group(pid, libc::SIGKILL);
                    stage = Stage::Killed;
                    wake = None;
                }
            }
            continue;
        }
        match signals.wait(wake.map(|at| at - now)) {
            Some(sig) if sig != libc::SIGCHLD && stage == Stage::Running => {
                stop = Stop::Signal(sig);
                kill_group(pid, libc::SIGTERM);
                stage = Stage::Terminating;
                wake = Some(Instant::now() + grace);
            }
            _ => {}
        }
    }
}

/// Whether `pid` (our child) has exited; it stays waitable.
fn has_exited(pid: u32) -> bool {
    // SAFETY: waitid fills the zeroed siginfo_t it is given.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // An error (no such child) must not leave the shim waiting forever.
        rc != 0 || info.si_pid() != 0
    }
}

fn kill_group(pgid: u32, signal: i32) {
    // SAFETY: kill with a negative pid signals a process group.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
}

/// Reaps our child `pid` and returns its wait status.
fn reap(pid: u32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into a local.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if rc >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return status;
        }
    }
}

/// Reaps the members of group `pgid` that became our children (we are a subreaper), waiting
/// for the SIGKILL already sent to take them; then any other zombie children.
fn reap_group(pgid: u32) {
    let mut status = 0;
    loop {
        // SAFETY: as in `reap`.
        let rc = unsafe { libc::waitpid(-(pgid as libc::pid_t), &mut status, 0) };
        if rc < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    // SAFETY: as in `reap`.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

fn outcome_of(status: i32) -> Outcome {
    if libc::WIFEXITED(status) {
        Outcome::Exited {
            code: libc::WEXITSTATUS(status),
        }
    } else if libc::WIFSIGNALED(status) {
        Outcome::Signaled {
            signal: libc::WTERMSIG(status),
        }
    } else {
        lost(format!("unexpected wait status {status}"))
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
