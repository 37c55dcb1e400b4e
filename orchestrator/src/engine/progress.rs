//! What a run tells the person watching: live bars on a terminal, one plain line per event
//! elsewhere (CI logs, pipes), nothing when quiet.

use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::store::StepStatus;

/// One thing worth telling.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    RunStarted {
        run: &'a str,
        workflow: &'a str,
        steps: usize,
        resumed: bool,
    },
    Step {
        /// The run the step is in (a daemon drives several at once).
        run: &'a str,
        step: &'a str,
        status: StepStatus,
        attempt: u32,
        runner: Option<&'a str>,
        message: Option<&'a str>,
    },
    RunFinished {
        run: &'a str,
        status: &'a str,
        passed: usize,
        cached: usize,
        failed: usize,
    },
}

pub trait Reporter: Send + Sync {
    fn report(&self, p: &Progress<'_>);
}

/// No output.
pub struct Quiet;
impl Reporter for Quiet {
    fn report(&self, _: &Progress<'_>) {}
}

/// One line per event on stderr.
pub struct Plain;
impl Reporter for Plain {
    fn report(&self, p: &Progress<'_>) {
        let line = plain_line(p);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

fn plain_line(p: &Progress<'_>) -> String {
    match p {
        Progress::RunStarted {
            run,
            workflow,
            steps,
            resumed,
        } => {
            format!(
                "run {run} {} ({workflow}, {steps} steps)",
                if *resumed { "resumed" } else { "started" }
            )
        }
        Progress::Step {
            step,
            status,
            attempt,
            runner,
            message,
            ..
        } => {
            let mut s = format!("  {step}: {}", status.as_str());
            if *attempt > 1 {
                s.push_str(&format!(" (attempt {attempt})"));
            }
            if let (StepStatus::Running, Some(r)) = (status, runner) {
                s.push_str(&format!(" on {r}"));
            }
            if let Some(m) = message {
                s.push_str(&format!(": {m}"));
            }
            s
        }
        Progress::RunFinished {
            run,
            status,
            passed,
            cached,
            failed,
        } => {
            format!("run {run} {status}: {passed} passed, {cached} cached, {failed} failed")
        }
    }
}

/// A bar for the run and a spinner line per running step.
pub struct Bars {
    multi: MultiProgress,
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    total: Option<ProgressBar>,
    running: std::collections::HashMap<String, ProgressBar>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::new(),
            state: Mutex::new(BarState::default()),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Bars {
    fn report(&self, p: &Progress<'_>) {
        let mut st = self.state.lock().expect("progress lock");
        match p {
            Progress::RunStarted { steps, .. } => {
                let bar = self.multi.add(ProgressBar::new(*steps as u64));
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                        .expect("template")
                        .progress_chars("=> "),
                );
                bar.set_prefix("tuna");
                let _ = self.multi.println(plain_line(p));
                st.total = Some(bar);
            }
            Progress::Step { step, status, .. } => {
                if *status == StepStatus::Running {
                    let sp = self.multi.add(ProgressBar::new_spinner());
                    sp.set_message(format!("{step}: running"));
                    sp.enable_steady_tick(std::time::Duration::from_millis(120));
                    st.running.insert(step.to_string(), sp);
                } else if status.is_final() || *status == StepStatus::Waiting {
                    if let Some(sp) = st.running.remove(*step) {
                        sp.finish_and_clear();
                        self.multi.remove(&sp);
                    }
                    if !matches!(status, StepStatus::Passed | StepStatus::Cached) {
                        let _ = self.multi.println(plain_line(p));
                    }
                    if status.is_final()
                        && let Some(t) = &st.total
                    {
                        t.inc(1);
                    }
                }
            }
            Progress::RunFinished { .. } => {
                if let Some(t) = st.total.take() {
                    t.finish_and_clear();
                }
                let _ = self.multi.println(plain_line(p));
            }
        }
    }
}
