//! The leaderboard of a list of checkpoints over three nights, each a scheduled run of the
//! daemon: the schedule is registered, the daemon is restarted three days later
//! (`TUNA_CLOCK_OFFSET_S`) and runs the three missed nightly fires; each checkpoint gets its
//! latest score, the change since the previous night and a regression flag per metric.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tuna_tests::{Project, wait_until};

use crate::daemon_harness::{Serve, TOKEN};

const LIMIT: Duration = Duration::from_secs(120);
const DAY: u64 = 86_400;

/// `CKPT NIGHT ACC EM` (NIGHT: 0, 1, 2). b's acc and c's em fall on the last night by more than
/// the 0.01 threshold; b's em falls by less.
const SCORES: &str = "\
a 0 0.50 0.30
a 1 0.52 0.31
a 2 0.55 0.33
b 0 0.60 0.40
b 1 0.61 0.45
b 2 0.55 0.445
c 0 0.70 0.20
c 1 0.70 0.25
c 2 0.70 0.10
";

/// A daily UTC fire time twelve hours from now: the first fire comes after registration, the
/// third before the clock (three days ahead) reaches the fourth. Unix seconds of the first.
fn first_fire() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now + DAY / 2) / 60 * 60
}

fn workflow(first: u64, scores: &str) -> String {
    let (hour, minute) = (first / 3600 % 24, first / 60 % 60);
    format!(
        r#"name: nightly-ckpts
schedule:
  cron: "{minute} {hour} * * *"
  timezone: UTC
  missed: all
  concurrency: allow
leaderboard:
  - {{ step: eval-a, model: ckpt-a, metrics: [acc, em] }}
  - {{ step: eval-b, model: ckpt-b, metrics: [acc, em] }}
  - {{ step: eval-c, model: ckpt-c, metrics: [acc, em] }}
steps:
  eval-a:
    env: {{ CKPT: a }}
    run: &eval |
      t=$(date -u -d ${{{{ run.scheduled_time }}}} +%s)
      [[ $t =~ ^[0-9]+$ ]] || exit 1
      night=$(( (t - {first}) / 86400 ))
      awk -v c="$CKPT" -v n="$night" '$1 == c && $2 == n {{ printf "{{\"acc\": %s, \"em\": %s}}", $3, $4 }}' {scores} > "$TUNA_METRICS"
      cat "$TUNA_METRICS"
  eval-b:
    env: {{ CKPT: b }}
    run: *eval
  eval-c:
    env: {{ CKPT: c }}
    run: *eval
"#
    )
}

fn history_len(d: &Serve) -> usize {
    d.get_json("/api/v1/leaderboard")["history"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn three_scheduled_nights_give_deltas_and_regressions_per_checkpoint() {
    let p = Project::new();
    p.file("scores.tsv", SCORES);
    let first = first_fire();
    p.file(
        "nightly.yaml",
        &workflow(first, &p.path("scores.tsv").display().to_string()),
    );
    let d = Serve::start(&p, &[]);
    d.tuna(&p, &["schedule", "add", "nightly.yaml"]).ok();
    d.kill();
    // Three days later: the three nightly fires were missed, and `missed: all` runs each.
    let d = Serve::start(&p, &[("TUNA_CLOCK_OFFSET_S", &(3 * DAY).to_string())]);
    wait_until(LIMIT, "three scheduled runs to pass", || {
        d.get_json("/api/v1/runs?workflow=nightly-ckpts&status=passed")
            .as_array()
            .unwrap()
            .len()
            == 3
    });
    wait_until(LIMIT, "18 leaderboard rows", || history_len(&d) == 18);
    let mut nights: Vec<String> = d
        .get_json("/api/v1/runs?workflow=nightly-ckpts")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let run = d.get_json(&format!("/api/v1/runs/{}", r["id"].as_str().unwrap()));
            run["scheduled_time"].as_str().unwrap()[..10].to_string()
        })
        .collect();
    nights.sort();
    nights.dedup();
    assert_eq!(nights.len(), 3, "three distinct nights: {nights:?}");

    let v: serde_json::Value =
        serde_json::from_str(&d.tuna(&p, &["leaderboard", "--format", "json"]).ok().stdout)
            .unwrap();
    let got: Vec<(String, String, f64, f64, bool)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["suite"], "nightly-ckpts");
            assert_eq!(e["night"], nights[2].as_str());
            assert_eq!(e["previous_night"], nights[1].as_str());
            (
                e["model"].as_str().unwrap().to_string(),
                e["metric"].as_str().unwrap().to_string(),
                e["value"].as_f64().unwrap(),
                e["delta"].as_f64().unwrap(),
                e["regression"].as_bool().unwrap(),
            )
        })
        .collect();
    let want = [
        ("ckpt-a", "acc", 0.55, 0.03, false),
        ("ckpt-a", "em", 0.33, 0.02, false),
        ("ckpt-b", "acc", 0.55, -0.06, true),
        ("ckpt-b", "em", 0.445, -0.005, false),
        ("ckpt-c", "acc", 0.70, 0.0, false),
        ("ckpt-c", "em", 0.10, -0.15, true),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str(), g.4), (w.0, w.1, w.4), "{g:?}");
        assert!(
            (g.2 - w.2).abs() < 1e-9 && (g.3 - w.3).abs() < 1e-9,
            "{g:?} vs {w:?}"
        );
    }
    let loose = d
        .tuna(&p, &["leaderboard", "--threshold", "0.1"])
        .ok()
        .stdout;
    assert_eq!(
        loose.matches("REGRESSION").count(),
        1,
        "only c's em: {loose}"
    );
    assert!(
        loose
            .lines()
            .any(|l| l.contains("ckpt-c") && l.contains("em") && l.contains("REGRESSION")),
        "{loose}"
    );

    // The leaderboard page draws a chart per metric with a line per checkpoint.
    let (code, page) = d.http("GET", "/leaderboard", Some(TOKEN), None);
    assert_eq!(code, 200);
    assert_eq!(page.matches("<svg class=\"trend\"").count(), 2, "{page}");
    assert_eq!(page.matches("class=\"series\"").count(), 6, "{page}");
}
