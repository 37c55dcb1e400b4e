//! Live export while runs are driven: a [`Tracker`] owns one thread that talks to the tracking
//! server, fed by the engine's progress events through a [`Feed`] reporter, so the dispatcher
//! never waits on MLflow. A run's parent MLflow run is made (status `RUNNING`) when the run
//! starts, each step's run is sent when the step ends, and the parent's status is set when the
//! run ends. The queue is bounded for step events (one dropped is sent at the run's end, which
//! sends every step not sent yet); start and end events are always kept.
//!
//! What could not be sent is recorded in the store ([`PendingExport`]) and sent later: by
//! `tuna track sync RUN`, and by the next tracker (`tuna run`, `tuna resume`, `tuna serve`)
//! before anything else. After a failure the tracker sends nothing more for that run until its
//! end, where it tries once more; the run's result never depends on any of it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::config::Config;
use super::export::Session;
use crate::engine::{Progress, Reporter};
use crate::store::{PendingExport, Store};

/// Step events queued at most; more are dropped (and sent at the run's end).
const MAX_QUEUED_STEPS: usize = 10_000;

/// Reads one setting (`MLFLOW_*`).
pub type Env = Box<dyn Fn(&str) -> Option<String> + Send>;

/// What the tracker says about a run: where it went, or why it did not.
pub type Notify = Box<dyn Fn(&str, Result<String, String>) + Send>;

enum Msg {
    Start(String),
    Step(String, String),
    End(String),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Msg>,
    steps: usize,
    closed: bool,
    /// Runs the worker found without tracking: their step events are not queued (a short
    /// step would otherwise wake the thread for nothing).
    untracked: HashSet<String>,
}

#[derive(Default)]
struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, m: Msg) {
        let mut st = self.state.lock().expect("tracking queue");
        if let Msg::Step(run, _) = &m {
            if st.steps >= MAX_QUEUED_STEPS || st.untracked.contains(run) {
                return;
            }
            st.steps += 1;
        }
        st.queue.push_back(m);
        self.ready.notify_one();
    }

    /// Whether run `run`'s step events are worth queueing.
    fn set_tracked(&self, run: &str, tracked: bool) {
        let mut st = self.state.lock().expect("tracking queue");
        if tracked {
            st.untracked.remove(run);
        } else {
            st.untracked.insert(run.to_string());
        }
    }

    /// The next message; `None` once closed and drained.
    fn pop(&self) -> Option<Msg> {
        let mut st = self.state.lock().expect("tracking queue");
        loop {
            if let Some(m) = st.queue.pop_front() {
                if matches!(m, Msg::Step(..)) {
                    st.steps -= 1;
                }
                return Some(m);
            }
            if st.closed {
                return None;
            }
            st = self.ready.wait(st).expect("tracking queue");
        }
    }
}

/// The thread that exports runs while they are driven.
pub struct Tracker {
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

/// A reporter that passes every event on and feeds the tracker the ones it exports on.
pub struct Feed {
    inner: Arc<dyn Reporter>,
    queue: Arc<Queue>,
}

impl Reporter for Feed {
    fn report(&self, p: &Progress<'_>) {
        self.inner.report(p);
        let m = match p {
            Progress::RunStarted { run, .. } => Msg::Start(run.to_string()),
            Progress::Step {
                run, step, status, ..
            } if status.is_final() => Msg::Step(run.to_string(), step.to_string()),
            Progress::RunFinished { run, .. } => Msg::End(run.to_string()),
            Progress::Step { .. } => return,
        };
        self.queue.push(m);
    }
}

impl Tracker {
    /// Starts the thread: it first sends what earlier runs left pending, then follows events.
    /// `env` reads one setting (`MLFLOW_*`); `notify` is told each run's result.
    pub fn start(
        store: Arc<Store>,
        env: impl Fn(&str) -> Option<String> + Send + 'static,
        notify: Notify,
    ) -> Tracker {
        let queue = Arc::new(Queue::default());
        let q = queue.clone();
        let thread = std::thread::Builder::new()
            .name("tuna-tracking".into())
            .spawn(move || Worker::new(store, Box::new(env), notify).serve(&q))
            .expect("spawn the tracking thread");
        Tracker {
            queue,
            thread: Some(thread),
        }
    }

    /// A reporter that tells `inner` everything and feeds this tracker.
    pub fn feed(&self, inner: Arc<dyn Reporter>) -> Arc<dyn Reporter> {
        Arc::new(Feed {
            inner,
            queue: self.queue.clone(),
        })
    }

    /// Sends what is queued, then stops the thread.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.queue.state.lock().expect("tracking queue").closed = true;
        self.queue.ready.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A run the tracker follows.
enum Followed {
    /// Tracking is not configured for it.
    Off,
    Live(Box<Session>, Config),
    /// A send failed; nothing more is tried until the run ends.
    Broken,
}

struct Worker {
    store: Arc<Store>,
    env: Env,
    notify: Notify,
    runs: HashMap<String, Followed>,
}

impl Worker {
    fn new(store: Arc<Store>, env: Env, notify: Notify) -> Worker {
        Worker {
            store,
            env,
            notify,
            runs: HashMap::new(),
        }
    }

    fn serve(mut self, q: &Queue) {
        self.sync_pending();
        while let Some(m) = q.pop() {
            match m {
                Msg::Start(run) => {
                    self.start(&run);
                    let off = matches!(self.runs.get(&run), Some(Followed::Off));
                    q.set_tracked(&run, !off);
                }
                Msg::Step(run, step) => self.step(&run, &step),
                Msg::End(run) => {
                    q.set_tracked(&run, true);
                    self.end(&run);
                }
            }
        }
    }

    /// Sends the runs earlier processes could not: quietly when it fails again (they stay
    /// pending, and `tuna track sync` says why).
    fn sync_pending(&mut self) {
        for p in self.store.pending_exports().unwrap_or_default() {
            if let Some(Ok(line)) = sync(&self.store, &p.run, &*self.env) {
                (self.notify)(&p.run, Ok(format!("{line} (kept from before)")));
            }
        }
    }

    fn start(&mut self, run: &str) {
        let Ok(Some(rec)) = self.store.run(run) else {
            return;
        };
        let followed = match Config::resolve(&rec, &*self.env) {
            Ok(None) => Followed::Off,
            Err(e) => {
                (self.notify)(run, Err(format!("MLflow tracking skipped: {e}")));
                Followed::Off
            }
            Ok(Some(cfg)) => match Session::open(&rec, &cfg).and_then(|s| {
                s.started()?;
                Ok(s)
            }) {
                Ok(s) => Followed::Live(Box::new(s), cfg),
                Err(e) => self.broken(run, e.to_string()),
            },
        };
        self.runs.insert(run.to_string(), followed);
    }

    fn step(&mut self, run: &str, step: &str) {
        let Some(Followed::Live(s, _)) = self.runs.get_mut(run) else {
            return;
        };
        let Ok(Some(rec)) = self.store.step(run, step) else {
            return;
        };
        if let Err(e) = s.send_step(&self.store, &rec) {
            let b = self.broken(run, e.to_string());
            self.runs.insert(run.to_string(), b);
        }
    }

    fn end(&mut self, run: &str) {
        let result = match self.runs.remove(run) {
            None | Some(Followed::Off) => return,
            Some(Followed::Live(mut s, cfg)) => s.finish(&self.store).map(|()| (s, cfg)),
            // Once more, whole: the server may be back.
            Some(Followed::Broken) => {
                match sync(&self.store, run, &*self.env) {
                    Some(Ok(line)) => (self.notify)(run, Ok(line)),
                    Some(Err(e)) => (self.notify)(run, Err(e)),
                    None => {}
                }
                return;
            }
        };
        match result {
            Ok((s, cfg)) => {
                let _ = self.store.remove_pending_export(run);
                (self.notify)(run, Ok(sent_line(run, &cfg, &s.parent, s.sent)));
            }
            Err(e) => {
                self.broken(run, e.to_string());
                (self.notify)(run, Err(failed_line(run, &e.to_string())));
            }
        }
    }

    /// Records that `run` has something left to send.
    fn broken(&self, run: &str, error: String) -> Followed {
        let _ = self
            .store
            .put_pending_export(&PendingExport::new(run, &error));
        Followed::Broken
    }
}

/// Sends run `run` whole (what the server lacks of it) with `env`'s settings and the run's
/// `tracking:` block, and clears or records its pending mark: `None` when tracking is not
/// configured for it, else the line to show.
pub fn sync(
    store: &Store,
    run: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Result<String, String>> {
    let rec = store.run(run).ok()??;
    let cfg = match Config::resolve(&rec, env) {
        Ok(c) => c?,
        Err(e) => return Some(Err(format!("MLflow tracking skipped: {e}"))),
    };
    Some(match super::export::export(store, &rec, &cfg) {
        Ok(x) => {
            let _ = store.remove_pending_export(run);
            Ok(sent_line(run, &cfg, &x.parent, x.steps))
        }
        Err(e) => {
            let _ = store.put_pending_export(&PendingExport::new(run, &e.to_string()));
            Err(failed_line(run, &e.to_string()))
        }
    })
}

fn sent_line(run: &str, cfg: &Config, parent: &str, steps: usize) -> String {
    format!(
        "run {run} in MLflow experiment `{}` (MLflow run {parent}; steps sent: {steps})",
        cfg.experiment
    )
}

fn failed_line(run: &str, e: &str) -> String {
    format!(
        "MLflow tracking of run {run} failed ({e}); the run's result is unchanged; what was not sent is kept and sent by `tuna track sync {run}` or the next `tuna run`/`tuna resume`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_events_are_bounded_and_start_and_end_are_always_kept() {
        let q = Queue::default();
        q.push(Msg::Start("r".into()));
        for i in 0..MAX_QUEUED_STEPS + 5 {
            q.push(Msg::Step("r".into(), format!("s{i}")));
        }
        q.push(Msg::End("r".into()));
        q.state.lock().unwrap().closed = true;
        let (mut starts, mut steps, mut ends) = (0, 0, 0);
        while let Some(m) = q.pop() {
            match m {
                Msg::Start(_) => starts += 1,
                Msg::Step(..) => steps += 1,
                Msg::End(_) => ends += 1,
            }
        }
        assert_eq!((starts, steps, ends), (1, MAX_QUEUED_STEPS, 1));
        // Room again once drained.
        q.push(Msg::Step("r".into(), "late".into()));
        assert!(matches!(q.pop(), Some(Msg::Step(..))));
    }
}
