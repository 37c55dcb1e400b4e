//! Valid files: the example workflows, the valid corpus, and what loading makes of them.

use std::path::Path;
use std::time::Duration;

use tuna::dag::{load_file, load_str};
use tuna::workflow::{Action, ConcurrencyPolicy, MissedPolicy, Ref, RetryOn, RunsOn, Selector};

use super::{repo, yaml_files};

#[test]
fn every_example_workflow_loads() {
    let files = yaml_files("workflows");
    assert!(files.iter().any(|(n, _)| n == "quickstart"));
    // Runner inventories beside the workflows (runners-*.yaml) are not workflows; the e2e
    // test of the shipped files loads them as inventories.
    for (_, rel) in files
        .into_iter()
        .filter(|(n, _)| !n.starts_with("runners-"))
    {
        if let Err(e) = load_file(&repo().join(&rel)) {
            panic!("{}", e.render_plain());
        }
    }
}

#[test]
fn every_valid_corpus_file_loads() {
    for (_, rel) in yaml_files("tests/corpus/valid") {
        if let Err(e) = load_file(&repo().join(&rel)) {
            panic!("{}", e.render_plain());
        }
    }
}

#[test]
fn the_full_format_loads_into_the_model() {
    let path = repo().join("tests/corpus/valid/full-format.yaml");
    let dag = load_file(&path).unwrap();
    let w = dag.workflow();
    assert_eq!(w.path, path);
    assert_eq!(w.project_dir, repo().join("tests/corpus/valid"));
    assert_eq!(w.params["lr"], "2e-4", "params keep their source text");
    let s = w.schedule.as_ref().unwrap();
    assert_eq!(
        (s.timezone.as_str(), s.missed, s.concurrency),
        (
            "Europe/Amsterdam",
            MissedPolicy::Latest,
            ConcurrencyPolicy::Forbid
        )
    );
    assert!(s.spec().unwrap().days_of_week.contains(5));
    assert_eq!(w.budget.as_ref().unwrap().max_cost, Some(150.0));
    let boards: Vec<_> = w
        .leaderboard
        .iter()
        .map(|e| (e.step.as_str(), e.metrics.len(), e.suite.as_deref()))
        .collect();
    assert_eq!(boards, [("smoke", 1, None), ("eval", 2, Some("helm-lite"))]);

    let train = &w.steps["train"];
    assert_eq!(
        train.runs_on,
        vec![
            RunsOn::Selector(Selector {
                gpu: Some("a100".into()),
                count: 2,
                memory: Some(40 << 30)
            }),
            RunsOn::Runner("a100-spot".into())
        ]
    );
    assert_eq!(train.retry.attempts, 3);
    assert_eq!(train.retry.backoff, Duration::from_secs(600));
    assert_eq!(
        train.retry.on,
        vec![RetryOn::Failure, RetryOn::Capacity, RetryOn::RunnerLost]
    );
    assert_eq!(train.timeout, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(train.wait_for_capacity, Some(Duration::from_secs(5400)));
    assert!(train.cache.enabled && train.cache.per_runner);
    assert_eq!(train.outputs, vec!["adapter/"]);
    let Action::Run(cmd) = &train.action else {
        panic!("train runs a command")
    };
    assert_eq!(
        cmd.refs().cloned().collect::<Vec<_>>(),
        vec![Ref::Param("lr".into()), Ref::RunId, Ref::ScheduledTime]
    );

    // `smoke` has a lower-cased GPU selector and the defaults.
    let smoke = &w.steps["smoke"];
    assert_eq!(
        smoke.runs_on,
        vec![RunsOn::Selector(Selector {
            gpu: Some("t4".into()),
            count: 1,
            memory: None
        })]
    );
    assert_eq!(smoke.gate.len(), 2);
    assert!(!w.steps["eval"].cache.enabled);
    assert_eq!(w.steps["eval"].gate[0].text, "accuracy >= 0.5");
}

#[test]
fn defaults_apply_only_where_a_step_sets_nothing() {
    let path = repo().join("tests/corpus/valid/full-format.yaml");
    let dag = load_file(&path).unwrap();
    let w = dag.workflow();
    let prepare = &w.steps["prepare"];
    assert_eq!(prepare.retry.attempts, 2, "from defaults");
    assert_eq!(prepare.retry.backoff, Duration::from_secs(30));
    assert_eq!(prepare.timeout, Some(Duration::from_secs(7200)));
    assert_eq!(prepare.wait_for_capacity, Some(Duration::from_secs(600)));
    assert_eq!(prepare.runs_on, vec![RunsOn::Runner("local".into())]);
    assert_eq!(
        prepare.env.keys().collect::<Vec<_>>(),
        vec!["DATASET", "PYTHONUNBUFFERED"]
    );
    let train = &w.steps["train"];
    assert_eq!(train.retry.attempts, 3, "its own");
    assert_eq!(train.timeout, Some(Duration::from_secs(24 * 3600)));
    // env merges per variable: the defaults' plus the step's own.
    assert_eq!(
        train.env.keys().collect::<Vec<_>>(),
        vec!["DATASET", "HF_HUB_OFFLINE", "PYTHONUNBUFFERED"]
    );
}

#[test]
fn references_imply_needs_in_first_mention_order() {
    let text = r#"
name: implied
steps:
  a: { run: touch x, outputs: [x] }
  b: { run: touch y, outputs: [y] }
  c:
    needs: [b]
    run: cat ${{ steps.a.outputs.x }} ${{ steps.b.outputs.y }} ${{ steps.a.outputs.x }}
"#;
    let dag = load_str(Path::new("implied.yaml"), text).unwrap();
    assert_eq!(dag.needs("c"), ["b", "a"]);
    assert_eq!(dag.dependents("a"), ["c"]);
}

#[test]
fn a_retry_without_attempts_keeps_one_attempt() {
    let text = "name: r\nsteps:\n  a: { run: 'true', retry: { on: capacity } }\n";
    let dag = load_str(Path::new("r.yaml"), text).unwrap();
    let r = &dag.workflow().steps["a"].retry;
    assert_eq!(
        (r.attempts, r.on.as_slice()),
        (1, [RetryOn::Capacity].as_slice())
    );
}

#[test]
fn with_values_reach_the_model_as_yaml() {
    let text = "name: u\nsteps:\n  a: { uses: data.prepare, with: { input: d.jsonl, val_fraction: 0.1 } }\n";
    let dag = load_str(Path::new("u.yaml"), text).unwrap();
    let a = &dag.workflow().steps["a"];
    let Action::Uses { kind, with } = &a.action else {
        panic!("a uses step");
    };
    assert_eq!(kind, "data.prepare");
    assert_eq!(with["val_fraction"].as_f64(), Some(0.1));
    // The kind's own outputs, since the step lists none.
    assert_eq!(a.outputs, ["train.jsonl", "stats.json", "val.jsonl"]);
    let unknown = "name: u\nsteps:\n  a: { uses: data.prep, with: { input: d.jsonl } }\n";
    let err = load_str(Path::new("u.yaml"), unknown).unwrap_err();
    assert_eq!(err.diagnostics()[0].code, "tuna::workflow::unknown_kind");
}

#[test]
fn leaderboard_takes_one_mapping_or_a_list_of_them() {
    let one = "name: one\nparams: { m: opt }\nleaderboard: { step: eval, model: \"${{ params.m }}\", metrics: acc }\nsteps:\n  eval: { run: \"true\" }\n";
    let dag = load_str(Path::new("one.yaml"), one).unwrap();
    let lb = &dag.workflow().leaderboard;
    assert_eq!(lb.len(), 1);
    assert_eq!(
        (lb[0].step.as_str(), lb[0].model.source.as_str()),
        ("eval", "${{ params.m }}")
    );
    assert_eq!(
        (lb[0].metrics.clone(), lb[0].suite.clone()),
        (vec!["acc".to_string()], None)
    );

    let list = r#"name: list
params: { family: opt }
leaderboard:
  - { step: eval-a, model: "${{ params.family }}@a", metrics: [acc, em], suite: lite }
  - { step: eval-b, model: "${{ params.family }}@b", metrics: [acc, em], suite: lite }
  - { step: eval-b, model: "${{ params.family }}@a", metrics: [f1], suite: lite }
steps:
  eval-a: { run: "true" }
  eval-b: { run: "true" }
"#;
    let dag = load_str(Path::new("list.yaml"), list).unwrap();
    let lb = &dag.workflow().leaderboard;
    let got: Vec<_> = lb
        .iter()
        .map(|e| (e.step.as_str(), e.model.source.as_str(), e.suite.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("eval-a", "${{ params.family }}@a", Some("lite")),
            ("eval-b", "${{ params.family }}@b", Some("lite")),
            ("eval-b", "${{ params.family }}@a", Some("lite")),
        ],
        "one model from two steps: fine while no metric of a suite is recorded twice"
    );

    let none = "name: none\nsteps:\n  eval: { run: \"true\" }\n";
    assert!(
        load_str(Path::new("none.yaml"), none)
            .unwrap()
            .workflow()
            .leaderboard
            .is_empty()
    );

    let scalar = "name: s\nleaderboard: eval\nsteps:\n  eval: { run: \"true\" }\n";
    let err = load_str(Path::new("s.yaml"), scalar).unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!(
        (d.code.as_str(), d.line, d.column),
        ("tuna::workflow::wrong_type", Some(2), Some(14))
    );
    assert!(
        d.message.contains("a mapping or a list of mappings"),
        "{}",
        d.message
    );
}
