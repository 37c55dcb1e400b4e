//! The dispatcher's retries, failover, cancellation and adoption, driven in process through
//! `Engine::with_runners` on scripted fake runners (`tuna_tests::fake_runner`): no process
//! runs, every outcome is chosen by the test, and every launch and cancel is checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tuna::engine::{Control, Engine, EngineError, Home, PoolRunner, Quiet, RunOptions};
use tuna::store::{RunStatus, StepRecord, StepStatus};
use tuna_runners::{Outcome, Runner, StepEnv};
use tuna_tests::fake_runner::{Call, FakeRunner, Kind, Script};

const LIMIT: Duration = Duration::from_secs(20);

/// An engine over `home` whose pool is `runners`, in order, two slots each.
fn engine(home: &Path, runners: &[&Arc<FakeRunner>]) -> Arc<Engine> {
    let pool = runners
        .iter()
        .map(|r| PoolRunner::new(r.name(), "fake", (*r).clone() as Arc<dyn Runner>, 2))
        .collect();
    let home = Home {
        root: home.to_path_buf(),
    };
    let eng = Engine::with_runners(home, pool, Arc::new(Quiet), &StepEnv::Inherit);
    Arc::new(eng.expect("engine"))
}

/// One run of a workflow on fake runners, in a project folder of its own.
struct Case {
    _dir: tempfile::TempDir,
    home: PathBuf,
    eng: Arc<Engine>,
    run: String,
}

impl Case {
    /// Records a run of `workflow` (`name: case`, then its `steps:` lines) on `runners`.
    fn new(steps: &str, runners: &[&Arc<FakeRunner>]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join(".tuna");
        let eng = engine(&home, runners);
        let workflow = format!("name: case\nsteps:\n{steps}");
        let path = dir.path().join("wf.yaml");
        std::fs::write(&path, &workflow).expect("workflow");
        let dag = tuna::dag::load_str(&path, &workflow).expect("workflow loads");
        let opts = RunOptions {
            jobs: 4,
            ..RunOptions::default()
        };
        let run = eng
            .create_run(&dag, &workflow, &BTreeMap::new(), &opts)
            .expect("run created");
        Case {
            _dir: dir,
            home,
            eng,
            run,
        }
    }

    /// Drives the run to its end.
    async fn drive(&self) -> RunStatus {
        self.eng.drive(&self.run, false).await.expect("drive")
    }

    /// Drives the run in a task of its own.
    fn spawn(&self) -> JoinHandle<Result<RunStatus, EngineError>> {
        driving(&self.eng, &self.run)
    }

    fn step(&self, name: &str) -> StepRecord {
        step(&self.eng, &self.run, name)
    }
}

/// `eng` driving `run` (new, not resumed) in a task of its own.
fn driving(eng: &Arc<Engine>, run: &str) -> JoinHandle<Result<RunStatus, EngineError>> {
    let (eng, run) = (eng.clone(), run.to_string());
    tokio::spawn(async move { eng.drive(&run, false).await })
}

fn step(eng: &Engine, run: &str, name: &str) -> StepRecord {
    eng.store
        .step(run, name)
        .expect("store")
        .unwrap_or_else(|| panic!("no record of {name}"))
}

/// The status a spawned driver ends with.
async fn ended(driver: JoinHandle<Result<RunStatus, EngineError>>) -> RunStatus {
    tokio::time::timeout(LIMIT, driver)
        .await
        .expect("the run ends")
        .expect("driver")
        .expect("drive")
}

/// Waits until `runner` watches `step`'s first attempt.
async fn watched(runner: &FakeRunner, step: &str) {
    let call = Call::new(Kind::Watch, step, 1);
    runner.wait_for("watch", LIMIT, |c| c.contains(&call)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_failing_twice_then_passing_with_two_retries_runs_three_attempts() {
    let fake = Arc::new(
        FakeRunner::new("a")
            .script("flaky", 1, Script::Exit(1))
            .script("flaky", 2, Script::Exit(7)),
    );
    let case = Case::new(
        "  flaky:\n    run: 'true'\n    outputs: [out.txt]\n    \
         retry: { attempts: 3, backoff: 0s }\n  after:\n    needs: [flaky]\n    run: 'echo after'\n",
        &[&fake],
    );
    assert_eq!(case.drive().await, RunStatus::Passed);
    assert_eq!(fake.attempts("flaky", Kind::Launch), vec![1, 2, 3]);
    let rec = case.step("flaky");
    assert_eq!(rec.status, StepStatus::Passed);
    let outcomes: Vec<_> = rec.attempts.iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        vec![
            Some(Outcome::Exited { code: 1 }),
            Some(Outcome::Exited { code: 7 }),
            Some(Outcome::Exited { code: 0 }),
        ]
    );
    assert_eq!(fake.attempts("after", Kind::Launch), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_is_kept_and_dependents_are_skipped() {
    let fake = Arc::new(
        FakeRunner::new("a")
            .script("flaky", 1, Script::Exit(1))
            .script("flaky", 2, Script::Exit(1))
            .script("flaky", 3, Script::Exit(1)),
    );
    let case = Case::new(
        "  flaky:\n    run: 'true'\n    retry: { attempts: 2, backoff: 0s }\n  \
         after:\n    needs: [flaky]\n    run: 'echo after'\n",
        &[&fake],
    );
    assert_eq!(case.drive().await, RunStatus::Failed);
    assert_eq!(fake.attempts("flaky", Kind::Launch), vec![1, 2]);
    assert_eq!(case.step("flaky").status, StepStatus::Failed);
    assert_eq!(case.step("after").status, StepStatus::Skipped);
    assert!(fake.attempts("after", Kind::Launch).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_unavailable_at_launch_sends_the_retry_to_the_next_runner() {
    let a = Arc::new(FakeRunner::new("a").script("train", 1, Script::Unavailable));
    let b = Arc::new(FakeRunner::new("b"));
    let case = Case::new(
        "  train:\n    run: 'true'\n    runs-on: [a, b]\n    \
         retry: { attempts: 2, backoff: 0s, on: [runner-lost] }\n",
        &[&a, &b],
    );
    assert_eq!(case.drive().await, RunStatus::Passed);
    assert_eq!(a.attempts("train", Kind::Launch), vec![1]);
    assert!(
        a.attempts("train", Kind::Start).is_empty(),
        "{:?}",
        a.calls()
    );
    assert_eq!(b.attempts("train", Kind::Start), vec![2]);
    let rec = case.step("train");
    let runners: Vec<&str> = rec.attempts.iter().map(|a| a.runner.as_str()).collect();
    assert_eq!(runners, ["a", "b"]);
    assert_eq!(rec.status, StepStatus::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_job_is_not_retried_without_runner_lost_in_retry_on() {
    let a = Arc::new(FakeRunner::new("a").script("train", 1, Script::Lost));
    let b = Arc::new(FakeRunner::new("b"));
    let case = Case::new(
        "  train:\n    run: 'true'\n    runs-on: [a, b]\n    \
         retry: { attempts: 2, backoff: 0s, on: [failure] }\n",
        &[&a, &b],
    );
    assert_eq!(case.drive().await, RunStatus::Failed);
    assert_eq!(a.attempts("train", Kind::Start), vec![1]);
    assert!(b.calls().is_empty(), "{:?}", b.calls());
    let message = case.step("train").message.unwrap_or_default();
    assert!(message.contains("lost the job"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_stops_its_hanging_step_and_runs_nothing_after_it() {
    let fake = Arc::new(FakeRunner::new("a").script("slow", 1, Script::Hang));
    let case = Case::new(
        "  slow:\n    run: 'true'\n    retry: { attempts: 3, backoff: 0s }\n  \
         after:\n    needs: [slow]\n    run: 'echo after'\n",
        &[&fake],
    );
    let driver = case.spawn();
    watched(&fake, "slow").await;
    assert!(case.eng.control(&case.run, Control::Cancel), "driven here");
    assert_eq!(ended(driver).await, RunStatus::Cancelled);
    assert_eq!(fake.attempts("slow", Kind::Cancel), vec![1]);
    assert_eq!(fake.attempts("slow", Kind::Launch), vec![1], "no retry");
    let slow = case.step("slow");
    assert_eq!(slow.status, StepStatus::Cancelled);
    assert_eq!(slow.attempts[0].outcome, Some(Outcome::Cancelled));
    // What comes after it never starts; it stays to be run by a resume.
    assert!(fake.attempts("after", Kind::Launch).is_empty());
    assert_eq!(case.step("after").status, StepStatus::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_its_runner_cancelled_skips_its_dependents_without_a_retry() {
    let fake = Arc::new(FakeRunner::new("a").script("slow", 1, Script::Hang));
    let case = Case::new(
        "  slow:\n    run: 'true'\n    retry: { attempts: 3, backoff: 0s }\n  \
         after:\n    needs: [slow]\n    run: 'echo after'\n  other:\n    run: 'echo other'\n",
        &[&fake],
    );
    let driver = case.spawn();
    watched(&fake, "slow").await;
    fake.release("slow", 1, Outcome::Cancelled);
    assert_eq!(ended(driver).await, RunStatus::Failed);
    assert_eq!(case.step("slow").status, StepStatus::Cancelled);
    assert_eq!(case.step("after").status, StepStatus::Skipped);
    assert_eq!(case.step("other").status, StepStatus::Passed);
    assert_eq!(fake.attempts("slow", Kind::Launch), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_adopts_the_stored_handle_without_starting_the_job_again() {
    let fake = Arc::new(FakeRunner::new("a").script("long", 1, Script::Hang));
    let Case {
        _dir,
        home,
        eng: first,
        run,
    } = Case::new(
        "  long:\n    run: 'true'\n  after:\n    needs: [long]\n    run: 'echo after'\n",
        &[&fake],
    );
    let driver = driving(&first, &run);
    watched(&fake, "long").await;
    // The handle is stored when the dispatcher takes the Launched event.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while step(&first, &run, "long").handle.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no handle stored");
        tokio::task::yield_now().await;
    }
    // The first engine's process "dies": its driver stops mid-run and its store closes.
    driver.abort();
    assert!(driver.await.unwrap_err().is_cancelled());
    drop(first);

    let second = engine(&home, &[&fake]);
    let stored = step(&second, &run, "long");
    assert_eq!(stored.status, StepStatus::Running);
    let handle = stored.handle.expect("handle");
    second.prepare_resume(&run).expect("resume");
    let driver = {
        let (eng, run) = (second.clone(), run.clone());
        tokio::spawn(async move { eng.drive(&run, true).await })
    };
    // The second engine watches attempt 1 again, then the job ends.
    fake.wait_for("the second watch of long", LIMIT, |c| {
        c.iter().filter(|c| c.kind == Kind::Watch).count() >= 2
    })
    .await;
    fake.release("long", 1, Outcome::Exited { code: 0 });
    assert_eq!(ended(driver).await, RunStatus::Passed);
    assert_eq!(fake.attempts("long", Kind::Watch), vec![1, 1]);
    // Launch was asked again for attempt 1 (it attaches), and the job started once.
    assert_eq!(fake.attempts("long", Kind::Start), vec![1]);
    assert_eq!(fake.attempts("long", Kind::Launch), vec![1, 1]);
    let rec = step(&second, &run, "long");
    assert_eq!(rec.attempts.len(), 1);
    assert_eq!(rec.handle.as_ref(), Some(&handle));
    assert_eq!(fake.attempts("after", Kind::Start), vec![1]);
}

/// A run whose driver died after its runner launched a step but before the store held the
/// handle (the runner keeps no journal of its own, so the store had the launch recorded as
/// `Launching` and nothing more): `cancel` from another engine asks that runner for the
/// attempt and stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_crashed_run_finds_a_launch_whose_handle_was_lost_and_stops_it() {
    let fake = Arc::new(FakeRunner::new("a").script("long", 1, Script::Hang));
    let Case {
        _dir,
        home,
        eng: first,
        run,
    } = Case::new("  long:\n    run: 'true'\n", &[&fake]);
    let driver = driving(&first, &run);
    watched(&fake, "long").await;
    driver.abort();
    assert!(driver.await.unwrap_err().is_cancelled());
    drop(first);

    let second = engine(&home, &[&fake]);
    // What such a crash leaves: the launch's record, written before it was made, and no handle.
    let mut rec = step(&second, &run, "long");
    rec.status = StepStatus::Launching;
    rec.handle = None;
    second.store.put_step(&rec).expect("store");
    assert_eq!(second.cancel_detached(&run).await.expect("cancel"), 1);
    assert_eq!(fake.attempts("long", Kind::Cancel), vec![1]);
    assert_eq!(fake.attempts("long", Kind::Start), vec![1]);
    assert_eq!(step(&second, &run, "long").status, StepStatus::Cancelled);
    let stored = second.store.run(&run).expect("store").expect("run");
    assert_eq!(stored.status, RunStatus::Cancelled);
}
