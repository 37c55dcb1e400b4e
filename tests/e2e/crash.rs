//! The crash tests: `tuna`, the home's supervisor, or both, killed with SIGKILL 100 times at
//! random moments of a 200-step run whose steps append to one file, resumed until done: every
//! step's command ran exactly once.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tuna_tests::Project;

const LAYERS: usize = 20;
const STEPS: usize = LAYERS * 10;
/// SIGKILLs of tuna before the run is left to finish.
const KILLS: usize = 100;

/// 200 steps in 20 layers of 10; step (l, i) needs (l-1, i) and (l-1, (i+1) % 10); each
/// sleeps `base` tenths of a second plus 0 to 2 more.
fn workflow(base: usize) -> String {
    let mut s = String::from("name: crash\nsteps:\n");
    for l in 0..LAYERS {
        for i in 0..10 {
            let _ = writeln!(s, "  s{l}-{i}:");
            if l > 0 {
                let _ = writeln!(
                    s,
                    "    needs: [s{}-{i}, s{}-{}]",
                    l - 1,
                    l - 1,
                    (i + 1) % 10
                );
            }
            let _ = writeln!(
                s,
                "    run: echo s{l}-{i} >> \"$TUNA_PROJECT_DIR/lines\"; sleep 0.{}",
                (l * 7 + i) % 3 + base
            );
        }
    }
    s
}

#[test]
fn sigkill_of_tuna_at_random_moments_never_runs_a_step_twice() {
    chaos(Victims::Tuna);
}

#[test]
fn sigkill_of_the_supervisor_at_random_moments_never_runs_a_step_twice() {
    chaos(Victims::Supervisor);
}

#[test]
fn sigkill_of_tuna_and_the_supervisor_at_random_moments_never_runs_a_step_twice() {
    chaos(Victims::Both);
}

/// Who gets the SIGKILLs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Victims {
    Tuna,
    Supervisor,
    Both,
}

fn chaos(victims: Victims) {
    let p = Project::new();
    // Steps long enough that the supervisor variant gets its kills in before the run ends.
    let base = if victims == Victims::Supervisor { 3 } else { 1 };
    p.file("wf.yaml", &workflow(base));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7a7a + victims as u64);
    let mut kills = 0;
    let mut first = true;
    let start = Instant::now();
    loop {
        // Until a run is recorded (a kill can land before that), start it again.
        first = first && !has_run(&p);
        let args: &[&str] = if first {
            &["run", "wf.yaml", "-j", "4"]
        } else {
            &["resume", "--last", "-j", "4"]
        };
        let mut child = p.spawn(args);
        if victims == Victims::Supervisor {
            // tuna runs on; its supervisor dies again and again under it.
            let mut last_killed = 0;
            while kills < KILLS && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(rng.random_range(10..80)));
                if let Some(pid) = supervisor_pid(&p).filter(|pid| *pid != last_killed) {
                    kill(pid);
                    last_killed = pid;
                    kills += 1;
                }
            }
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "tuna failed while its supervisor was killed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        }
        if kills < KILLS {
            let deadline = Instant::now() + Duration::from_millis(rng.random_range(30..250));
            let mut exited = None;
            while Instant::now() < deadline && exited.is_none() {
                exited = child.try_wait().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            if exited.is_none() {
                if victims == Victims::Both
                    && let Some(pid) = supervisor_pid(&p)
                {
                    kill(pid);
                }
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                continue;
            }
            let code = exited.unwrap().code();
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert_eq!(code, Some(0), "tuna ended early with {code:?}: {err}");
            break;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "final resume failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        break;
    }
    assert!(start.elapsed() < Duration::from_secs(600));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in p.read("lines").lines() {
        *seen.entry(line.to_string()).or_default() += 1;
    }
    assert_eq!(seen.len(), STEPS, "every step ran");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "steps that ran more than once: {twice:?}");
    assert!(
        kills >= KILLS * 9 / 10,
        "only {kills} kills happened before the run finished"
    );
    let last = p.run(&["runs", "--json"]).ok();
    let runs: serde_json::Value = serde_json::from_str(&last.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "one run, resumed");
    assert_eq!(runs[0]["status"], "passed");
}

/// The live supervisor of the project's home, from its lock file (empty for the instant a new
/// one writes it).
fn supervisor_pid(p: &Project) -> Option<u32> {
    let text = std::fs::read_to_string(
        p.home()
            .join("supervisor")
            .join(tuna_runners::local::daemon::LOCK),
    )
    .ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

fn kill(pid: u32) {
    // SAFETY: SIGKILL to the supervisor this test's tuna started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

fn has_run(p: &Project) -> bool {
    if !p.home().join("db").exists() {
        return false;
    }
    let r = p.run(&["runs", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    !v.as_array().unwrap().is_empty()
}
