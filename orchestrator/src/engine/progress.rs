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

/// A bar for the run and a spinner line per running step, up to [`SPINNERS`]; past that one
/// line counts the rest, so a run of 1,000 steps at `-j 64` stays a screenful.
pub struct Bars {
    multi: MultiProgress,
    state: Mutex<BarState>,
}

/// The most running steps shown each on its own line.
pub const SPINNERS: usize = 8;

#[derive(Default)]
struct BarState {
    total: Option<ProgressBar>,
    running: std::collections::HashMap<String, ProgressBar>,
    shown: Shown,
    /// "… and N more running", while some are hidden.
    more: Option<ProgressBar>,
}

/// Which running steps have a line: the first [`SPINNERS`] to start; when one ends, the
/// longest-waiting hidden one takes its place.
#[derive(Debug, Default)]
struct Shown {
    hidden: std::collections::VecDeque<String>,
    lines: usize,
}

impl Shown {
    /// A step started: whether it gets a line.
    fn start(&mut self, step: &str) -> bool {
        if self.lines < SPINNERS {
            self.lines += 1;
            true
        } else {
            self.hidden.push_back(step.to_string());
            false
        }
    }

    /// A step ended (`had_line`: it had one): the hidden step that takes its line, if any.
    fn end(&mut self, step: &str, had_line: bool) -> Option<String> {
        if !had_line {
            self.hidden.retain(|s| s != step);
            return None;
        }
        match self.hidden.pop_front() {
            Some(next) => Some(next),
            None => {
                self.lines -= 1;
                None
            }
        }
    }
}

impl BarState {
    fn spinner(&mut self, multi: &MultiProgress, step: &str) {
        let sp = multi.add(ProgressBar::new_spinner());
        sp.set_message(format!("{step}: running"));
        sp.enable_steady_tick(std::time::Duration::from_millis(120));
        self.running.insert(step.to_string(), sp);
    }

    /// The "more running" line, kept to the count of hidden steps.
    fn count_hidden(&mut self, multi: &MultiProgress) {
        let n = self.shown.hidden.len();
        match (&self.more, n) {
            (Some(m), 0) => {
                m.finish_and_clear();
                multi.remove(m);
                self.more = None;
            }
            (Some(m), n) => m.set_message(format!("… and {n} more running")),
            (None, 0) => {}
            (None, n) => {
                let m = multi.add(ProgressBar::new_spinner());
                m.set_message(format!("… and {n} more running"));
                self.more = Some(m);
            }
        }
    }
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
                    if st.running.contains_key(*step) || st.shown.hidden.iter().any(|s| s == step) {
                        return;
                    }
                    if st.shown.start(step) {
                        st.spinner(&self.multi, step);
                    }
                    st.count_hidden(&self.multi);
                } else if status.is_final() || *status == StepStatus::Waiting {
                    let had_line = match st.running.remove(*step) {
                        Some(sp) => {
                            sp.finish_and_clear();
                            self.multi.remove(&sp);
                            true
                        }
                        None => false,
                    };
                    if let Some(next) = st.shown.end(step, had_line) {
                        st.spinner(&self.multi, &next);
                    }
                    st.count_hidden(&self.multi);
                    // Skipped steps are counted at the end, not listed: one early failure in
                    // 1,000 steps is one line.
                    if !matches!(
                        status,
                        StepStatus::Passed | StepStatus::Cached | StepStatus::Skipped
                    ) {
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
                if let Some(m) = st.more.take() {
                    m.finish_and_clear();
                }
                let _ = self.multi.println(plain_line(p));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_spinner_cap_steps_wait_hidden_and_take_freed_lines_in_order() {
        let mut s = Shown::default();
        let names: Vec<String> = (0..SPINNERS + 3).map(|i| format!("s{i}")).collect();
        let shown: Vec<bool> = names.iter().map(|n| s.start(n)).collect();
        assert!(shown[..SPINNERS].iter().all(|&b| b));
        assert!(shown[SPINNERS..].iter().all(|&b| !b));
        assert_eq!(s.hidden.len(), 3);
        // A hidden one ends: no line changes hands.
        assert_eq!(s.end(&names[SPINNERS + 1], false), None);
        // A shown one ends: the longest-waiting hidden one gets its line.
        assert_eq!(s.end(&names[0], true), Some(names[SPINNERS].clone()));
        assert_eq!(s.end(&names[1], true), Some(names[SPINNERS + 2].clone()));
        assert_eq!(s.end(&names[2], true), None);
        assert_eq!((s.lines, s.hidden.len()), (SPINNERS - 1, 0));
    }
}
