//! The leaderboard from three nightly runs of two models, through the CLI (table, json, csv),
//! and the dashboard in a real headless Chromium: a run's DAG with status colours, the
//! leaderboard's trend charts, a step's live log.

use std::process::Command;

use tuna_tests::Project;

use crate::daemon_harness::{Serve, TOKEN};

const WF: &str = r#"name: nightly-eval
params:
  model_name: opt-350m
  night: "2024-01-01"
  acc: "0.5"
  em: "0.3"
leaderboard:
  step: eval
  model: "${{ params.model_name }}"
  metrics: [acc, em]
steps:
  prepare:
    run: echo ready
  eval:
    needs: [prepare]
    run: |
      echo "evaluating ${{ params.model_name }}"
      printf '{"acc": %s, "em": %s}' ${{ params.acc }} ${{ params.em }} > "$TUNA_METRICS"
  report:
    needs: [eval]
    run: echo done
"#;

/// (model, night, acc, em): m2's em drops by 0.05 on the third night.
const NIGHTS: &[(&str, &str, &str, &str)] = &[
    ("m1", "2024-01-01", "0.50", "0.30"),
    ("m2", "2024-01-01", "0.60", "0.40"),
    ("m1", "2024-01-02", "0.52", "0.31"),
    ("m2", "2024-01-02", "0.61", "0.45"),
    ("m1", "2024-01-03", "0.55", "0.33"),
    ("m2", "2024-01-03", "0.62", "0.40"),
];

fn nightly(p: &Project, d: &Serve) -> String {
    p.file("nightly.yaml", WF);
    let mut last = String::new();
    for (model, night, acc, em) in NIGHTS {
        let r = d.tuna(
            p,
            &[
                "submit",
                "nightly.yaml",
                "--follow",
                "-p",
                &format!("model_name={model}"),
                "-p",
                &format!("night={night}"),
                "-p",
                &format!("acc={acc}"),
                "-p",
                &format!("em={em}"),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        last = r.run_id();
    }
    last
}

#[test]
fn leaderboard_from_three_nights_and_the_dashboard_in_chromium() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let run = nightly(&p, &d);

    let v: serde_json::Value =
        serde_json::from_str(&d.tuna(&p, &["leaderboard", "--format", "json"]).ok().stdout)
            .unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "2 models × 2 metrics");
    let find = |model: &str, metric: &str| {
        entries
            .iter()
            .find(|e| e["model"] == model && e["metric"] == metric)
            .unwrap()
            .clone()
    };
    let m1 = find("m1", "acc");
    assert_eq!(
        (m1["night"].as_str(), m1["value"].as_f64()),
        (Some("2024-01-03"), Some(0.55))
    );
    assert!((m1["delta"].as_f64().unwrap() - 0.03).abs() < 1e-9);
    assert_eq!(m1["regression"], false);
    let m2 = find("m2", "em");
    assert_eq!(m2["previous"].as_f64(), Some(0.45));
    assert_eq!(m2["regression"], true, "a 0.05 drop is a regression");
    let table = d.tuna(&p, &["leaderboard"]).ok().stdout;
    assert_eq!(table.matches("REGRESSION").count(), 1, "{table}");
    let loose = d
        .tuna(&p, &["leaderboard", "--threshold", "0.1"])
        .ok()
        .stdout;
    assert!(!loose.contains("REGRESSION"), "{loose}");
    let csv = d.tuna(&p, &["leaderboard", "--format", "csv"]).ok().stdout;
    assert!(csv.starts_with("suite,model,metric,night,value,previous,delta,regression,run\n"));
    assert!(
        csv.contains("nightly-eval,m2,em,2024-01-03,0.4,0.45,"),
        "{csv}"
    );

    // The dashboard, rendered by a real browser.
    let chromium = chromium();
    let dom = dump_dom(&chromium, &format!("{}/runs/{run}?token={TOKEN}", d.url));
    // The last night's eval ran; prepare and report were cache hits from earlier nights.
    for (step, status) in [
        ("prepare", "cached"),
        ("eval", "passed"),
        ("report", "cached"),
    ] {
        assert!(
            dom.contains(&format!(r#"data-step="{step}" data-status="{status}""#)),
            "the DAG shows {step} {status}:\n{dom}"
        );
    }
    assert!(dom.contains("<svg class=\"dag\""), "{dom}");
    assert!(dom.contains("fill=\"#1a7f37\""), "passed steps are green");
    assert!(
        dom.contains("fill=\"#4ac26b\""),
        "cached steps are light green"
    );
    assert!(
        dom.contains("data-refreshed=\"passed\""),
        "the page's script ran and refreshed: {dom}"
    );
    let board = dump_dom(&chromium, &format!("{}/leaderboard?token={TOKEN}", d.url));
    assert_eq!(
        board.matches("<svg class=\"trend\"").count(),
        2,
        "a chart per metric"
    );
    assert_eq!(
        board.matches("class=\"series\"").count(),
        4,
        "a line per model and metric"
    );
    assert!(board.contains("regression"), "{board}");
    let log = dump_dom(
        &chromium,
        &format!("{}/runs/{run}/steps/eval?token={TOKEN}", d.url),
    );
    assert!(
        log.contains("evaluating m2"),
        "the log page streamed the step's log: {log}"
    );
    assert!(log.contains("ended: passed"), "{log}");
    // Without a token, the dashboard refuses.
    let (code, _) = d.http("GET", "/leaderboard", None, None);
    assert_eq!(code, 401);
}

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!(
        "the dashboard test needs headless Chromium: scripts/setup-system.sh installs it (./test.sh runs it first)"
    );
}

/// The page's DOM after its scripts ran (virtual time lets fetches and streams finish).
fn dump_dom(chromium: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
