//! A waiter's work once it owns an attempt: run the script in its own process group, enforce
//! the timeout and cancellation (SIGTERM to the group, a grace period, SIGKILL), clean up
//! what the script left behind, and produce the [`ExitRecord`].

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::exit_record::ExitRecord;
use super::layout;
use super::log_pump;
use super::signals::{CANCEL_SIGNAL, Signals};
use super::spawn::Spawn;
use super::spec::LaunchSpec;
use crate::Outcome;

/// How long a script runs before `ran_a_while` is called (see [`supervise`]).
pub(crate) const A_WHILE: Duration = Duration::from_millis(20);

/// Runs the attempt in `dir` to its end and says how it ended. `ran_a_while` is called once
/// the script has run for [`A_WHILE`], and not at all for a script that ended sooner or could
/// not start: the waiter makes its claim durable then, so a step of a few milliseconds costs
/// no disk sync.
pub(crate) fn supervise(
    dir: &Path,
    spec: &LaunchSpec,
    signals: &Signals,
    ran_a_while: impl FnOnce(),
) -> ExitRecord {
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
    // Orphans of the script's group come to us, so we can reap them before reporting (set once:
    // it lasts for the process).
    static SUBREAPER: std::sync::Once = std::sync::Once::new();
    // SAFETY: prctl with an integer option and flag.
    SUBREAPER.call_once(|| unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    });
    let (pid, pipes) = match spawn_script(spec) {
        Ok(started) => started,
        Err((program, e)) if program != "bash" && direct_exit_code(&e).is_some() => {
            // As bash reports a program it cannot run.
            let code = direct_exit_code(&e).unwrap_or(127);
            let what = if code == 127 {
                "command not found".to_string()
            } else {
                e.to_string()
            };
            let _ = layout::open_log(dir, layout::STDERR_LOG)
                .and_then(|mut f| writeln!(f, "bash: line 1: {program}: {what}"));
            return finish(Outcome::Exited { code }, None);
        }
        Err((program, e)) => return finish(lost(format!("cannot start {program}: {e}")), None),
    };
    let mut pumps = log_pump::Pumps::start(pipes, dir, &spec.job.secret_values());
    let cancel = dir.join(layout::CANCEL);
    let stop = wait_for_exit(
        pid,
        spec.job.timeout,
        spec.kill_grace(),
        (signals, &mut pumps),
        &cancel,
        Some((Instant::now() + A_WHILE, ran_a_while)),
    );
    // The script's process is a zombie now (waited for without reaping), so its pid, which
    // names its process group, cannot be reused yet: kill what is left of the group, then reap.
    kill_group(pid, libc::SIGKILL);
    let status = reap(pid);
    reap_group(pid);
    pumps.finish(Duration::from_secs(2));
    let outcome = match stop {
        Stop::Signal(_) if cancel.exists() => Outcome::Cancelled,
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

/// The read ends of a script's stdout and stderr pipes.
type Pipes = [File; 2];

/// Spawns the script (directly when it is one simple command, else under bash): its pid and
/// its output pipes. On failure, the program that could not start.
fn spawn_script(spec: &LaunchSpec) -> Result<(u32, Pipes), (String, io::Error)> {
    let direct = super::direct::simple_argv(&spec.job.script, &|k| env_has(spec, k));
    let program = direct
        .as_ref()
        .map_or("bash".to_string(), |argv| argv[0].clone());
    spawn_inner(spec, direct).map_err(|e| (program, e))
}

fn spawn_inner(spec: &LaunchSpec, direct: Option<Vec<String>>) -> io::Result<(u32, Pipes)> {
    let job = &spec.job;
    let work = job.cwd();
    let mut env = spec.base_env.clone();
    env.extend(job.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert(
        "CUDA_VISIBLE_DEVICES".into(),
        job.resources.cuda_visible_devices(),
    );
    let path_var = env.get("PATH");
    let script_args = ["bash", "-euo", "pipefail", "-c", &job.script];
    let (program, argv): (PathBuf, Vec<&str>) = match &direct {
        Some(argv) => (
            find_program(&argv[0], path_var, &work)?,
            argv.iter().map(String::as_str).collect(),
        ),
        None => (find_program("bash", path_var, &work)?, script_args.to_vec()),
    };
    if direct.is_some() {
        env.insert("PWD".into(), work.display().to_string());
    }
    // The logs go through the waiter (see `log_pump`).
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let pid = Spawn {
        program: &program,
        argv,
        env: &env,
        cwd: &work,
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
    }
    .start()?;
    // Our copies of the write ends close here, so the pumps see the end of the script's.
    Ok((pid, [out_r, err_r]))
}

/// A pipe whose two ends close on exec: (read, write).
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are new and ours alone.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Where `program` is, as `execvp` in the script's folder `work` would find it on `path` (a
/// name with a slash is taken as it is; no PATH means the system default).
fn find_program(program: &str, path: Option<&String>, work: &Path) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = path.map_or("/usr/local/bin:/usr/bin:/bin", String::as_str);
    let mut denied = false;
    for entry in path.split(':') {
        let candidate = work.join(entry).join(program);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(m) if m.is_file() => denied = true,
            _ => {}
        }
    }
    Err(if denied {
        io::ErrorKind::PermissionDenied.into()
    } else {
        io::ErrorKind::NotFound.into()
    })
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

/// Waits until the script's process has exited, without reaping it, copying its output into
/// the logs meanwhile (from [`A_WHILE`] on: before, it waits in the pipes). Past the timeout,
/// or on a stop signal, sends SIGTERM to its group and SIGKILL after `grace`.
/// The cancel signal counts only when the attempt's `cancel` marker exists: it may have been
/// meant for an attempt this waiter ran before. `later` is called at its time if the script
/// still runs then.
fn wait_for_exit(
    pid: u32,
    timeout: Option<Duration>,
    grace: Duration,
    (signals, pumps): (&Signals, &mut log_pump::Pumps),
    cancel: &Path,
    mut later: Option<(Instant, impl FnOnce())>,
) -> Stop {
    /// The poll entry of the signalfd, among the pipes'.
    const SIGNALS: usize = usize::MAX;
    let mut stop = Stop::None;
    let mut stage = Stage::Running;
    let mut wake = timeout.map(|t| Instant::now() + t);
    // The output pipes are listened to once the script has run for a while: a short script's
    // output waits in them (64 KiB each) until it has ended. A waiter that listened at once
    // would be woken as the script closes each of them, and take the CPU from it each time.
    let listen_from = Instant::now() + A_WHILE;
    loop {
        if has_exited(pid) {
            return stop;
        }
        let now = Instant::now();
        if later.as_ref().is_some_and(|(at, _)| *at <= now)
            && let Some((_, call)) = later.take()
        {
            call();
            continue;
        }
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
        let listening = listen_from <= now;
        let mut fds = if listening {
            pumps.open_fds()
        } else {
            Vec::new()
        };
        fds.push((SIGNALS, signals.fd()));
        let next = [wake, later.as_ref().map(|(at, _)| *at)]
            .into_iter()
            .chain([(!listening).then_some(listen_from)])
            .flatten()
            .min();
        for ready in log_pump::poll_readable(&fds, next.map(|at| at - now)) {
            if ready != SIGNALS {
                pumps.read(ready);
                continue;
            }
            for sig in signals.take() {
                let asks_to_stop = sig != libc::SIGCHLD
                    && stage == Stage::Running
                    && (sig != CANCEL_SIGNAL || cancel.exists());
                if asks_to_stop {
                    stop = Stop::Signal(sig);
                    kill_group(pid, libc::SIGTERM);
                    stage = Stage::Terminating;
                    wake = Some(Instant::now() + grace);
                }
            }
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
        // An error (no such child) must not leave the waiter waiting forever.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `sh -c script` to its end; whether `later`, due `after`, was called.
    fn later_called(script: &str, after: Duration) -> bool {
        let signals = Signals::block().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (out_r, out_w) = pipe().unwrap();
        let (err_r, err_w) = pipe().unwrap();
        let pid = Spawn {
            program: Path::new("/bin/sh"),
            argv: vec!["sh", "-c", script],
            env: &Default::default(),
            cwd: dir.path(),
            stdout: out_w.as_raw_fd(),
            stderr: err_w.as_raw_fd(),
        }
        .start()
        .unwrap();
        drop((out_w, err_w));
        let mut pumps = log_pump::Pumps::start([out_r, err_r], dir.path(), &[]);
        let mut called = false;
        let stop = wait_for_exit(
            pid,
            None,
            Duration::from_secs(1),
            (&signals, &mut pumps),
            &dir.path().join(layout::CANCEL),
            Some((Instant::now() + after, || called = true)),
        );
        assert_eq!(stop, Stop::None);
        assert_eq!(outcome_of(reap(pid)), Outcome::Exited { code: 0 });
        called
    }

    #[test]
    fn later_is_called_only_while_the_script_still_runs_at_its_time() {
        assert!(later_called("sleep 0.2", Duration::ZERO));
        assert!(!later_called("exit 0", Duration::from_secs(1)));
    }
}
