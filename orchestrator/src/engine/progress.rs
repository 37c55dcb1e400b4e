//! What a run tells the person watching: live bars on a terminal, one plain line per event
//! elsewhere (CI logs, pipes), nothing when quiet. On a terminal each running step's line also
//! shows how far it has come (its `$TUNA_PROGRESS` file, read by a small poller thread).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tuna_steps::StepProgress;

use super::attempt_files::AttemptFiles;

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
        /// The attempt's folder on this machine (its progress file is read from there).
        dir: Option<&'a Path>,
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

/// A bar for the run and a spinner line per running step, up to [`SPINNERS`]; past that one
/// line counts the rest, so a run of 1,000 steps at `-j 64` stays a screenful.
pub struct Bars {
    multi: MultiProgress,
    state: Arc<Mutex<BarState>>,
}

/// The most running steps shown each on its own line.
pub const SPINNERS: usize = 8;

#[derive(Default)]
struct BarState {
    total: Option<ProgressBar>,
    running: HashMap<String, ProgressBar>,
    /// Attempt folders of the running steps, shown or hidden.
    dirs: HashMap<String, PathBuf>,
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
        sp.set_message(running_line(step, None));
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

/// A running step's spinner text: `tune: running · 12/40 steps · 1,234 tokens/s · loss 2.31`.
fn running_line(step: &str, p: Option<&StepProgress>) -> String {
    match p {
        Some(p) => format!("{step}: running · {}", p.line()),
        None => format!("{step}: running"),
    }
}

/// How often the poller reads the progress files of the steps with a line.
const POLL: Duration = Duration::from_millis(500);

/// Reads the progress file of every shown running step each [`POLL`] and updates its line,
/// until the bars are dropped. The files are read with the lock released.
fn poll(state: Weak<Mutex<BarState>>) {
    loop {
        std::thread::sleep(POLL);
        let Some(state) = state.upgrade() else { return };
        let shown: Vec<(String, ProgressBar, PathBuf)> = {
            let st = state.lock().expect("progress lock");
            st.running
                .iter()
                .filter_map(|(s, bar)| Some((s.clone(), bar.clone(), st.dirs.get(s)?.clone())))
                .collect()
        };
        drop(state);
        for (step, bar, dir) in shown {
            if let Some(p) = StepProgress::read(&AttemptFiles::progress_of(&dir)) {
                bar.set_message(running_line(&step, Some(&p)));
            }
        }
    }
}

impl Bars {
    pub fn new() -> Bars {
        Bars::on(MultiProgress::new())
    }

    /// Bars drawn on `multi` (a hidden one in tests).
    fn on(multi: MultiProgress) -> Bars {
        let state = Arc::new(Mutex::new(BarState::default()));
        let weak = Arc::downgrade(&state);
        let _ = std::thread::Builder::new()
            .name("tuna-progress".into())
            .spawn(move || poll(weak));
        Bars { multi, state }
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
            Progress::Step {
                step, status, dir, ..
            } => {
                if *status == StepStatus::Running {
                    if st.running.contains_key(*step) || st.shown.hidden.iter().any(|s| s == step) {
                        return;
                    }
                    if let Some(d) = dir {
                        st.dirs.insert(step.to_string(), d.to_path_buf());
                    }
                    if st.shown.start(step) {
                        st.spinner(&self.multi, step);
                    }
                    st.count_hidden(&self.multi);
                } else if status.is_final() || *status == StepStatus::Waiting {
                    st.dirs.remove(*step);
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
    fn a_running_steps_line_follows_its_progress_file() {
        let d = tempfile::tempdir().unwrap();
        let bars = Bars::on(MultiProgress::with_draw_target(
            indicatif::ProgressDrawTarget::hidden(),
        ));
        let step = |status| Progress::Step {
            run: "r1",
            step: "tune",
            status,
            attempt: 1,
            runner: Some("local"),
            message: None,
            dir: Some(d.path()),
        };
        bars.report(&step(StepStatus::Running));
        let line = || bars.state.lock().unwrap().running["tune"].message();
        assert_eq!(line(), "tune: running");
        let mut p = StepProgress {
            done: 1,
            total: Some(4),
            unit: Some("steps".into()),
            rate: None,
            rate_unit: None,
            message: None,
        };
        for done in [1, 4] {
            p.done = done;
            p.write(&d.path().join(super::super::attempt_files::PROGRESS_FILE))
                .unwrap();
            let want = format!("tune: running · {done}/4 steps");
            let limit = std::time::Instant::now() + Duration::from_secs(20);
            while line() != want {
                assert!(std::time::Instant::now() < limit, "{} != {want}", line());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        bars.report(&step(StepStatus::Passed));
        assert!(bars.state.lock().unwrap().dirs.is_empty());
    }

    #[test]
    fn a_running_line_adds_the_progress_when_there_is_some() {
        assert_eq!(running_line("tune", None), "tune: running");
        let p = StepProgress {
            done: 12,
            total: Some(40),
            unit: Some("steps".into()),
            rate: Some(1234.0),
            rate_unit: Some("tokens/s".into()),
            message: None,
        };
        assert_eq!(
            running_line("tune", Some(&p)),
            "tune: running · 12/40 steps · 1,234 tokens/s"
        );
    }

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
