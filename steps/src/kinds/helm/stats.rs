//! HELM's scores: each run folder's `stats.json` (a list of `{name: {name, split,
//! perturbation?}, count, sum, mean, …}`) read into metrics `ENTRY_METRIC` — the mean on the
//! test split, else on the valid split, leaving out perturbed variants.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::StepError;
use crate::kind::Metrics;

/// Metrics of every run folder under `suite_dir`; fails when an entry produced none.
pub(crate) fn collect(suite_dir: &Path, entries: &[String]) -> Result<Metrics, StepError> {
    let mut m = Metrics::new();
    let read = std::fs::read_dir(suite_dir).map_err(|e| {
        StepError::Failed(format!(
            "HELM wrote no results under {}: {e}",
            suite_dir.display()
        ))
    })?;
    let mut found = 0;
    for dir in read.flatten() {
        let stats = dir.path().join("stats.json");
        let Ok(text) = std::fs::read_to_string(&stats) else {
            continue;
        };
        let name = dir.file_name().to_string_lossy().into_owned();
        let entry = metric_prefix(name.split(':').next().unwrap_or(&name));
        let values =
            means(&text).map_err(|e| StepError::Failed(format!("{}: {e}", stats.display())))?;
        found += 1;
        for (metric, v) in values {
            m.insert(format!("{entry}_{metric}"), v.into());
        }
    }
    if found < entries.len() {
        return Err(StepError::Failed(format!(
            "HELM produced results for {found} of {} run entries under {}",
            entries.len(),
            suite_dir.display()
        )));
    }
    Ok(m)
}

/// A metric-name-safe form of a run entry's name.
fn metric_prefix(entry: &str) -> String {
    entry
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Mean per metric name: test split first, then valid; unperturbed only.
fn means(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let list: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a list of stats: {e}"))?;
    let mut by_split: BTreeMap<(u8, String), f64> = BTreeMap::new();
    for s in &list {
        let name = &s["name"];
        if name.get("perturbation").is_some_and(|p| !p.is_null()) {
            continue;
        }
        let (Some(metric), Some(mean)) = (name["name"].as_str(), s["mean"].as_f64()) else {
            continue;
        };
        let rank = match name["split"].as_str() {
            Some("test") => 0,
            Some("valid") => 1,
            _ => continue,
        };
        by_split.insert((rank, metric_prefix(metric)), mean);
    }
    let mut out = BTreeMap::new();
    for ((_, metric), mean) in by_split {
        out.entry(metric).or_insert(mean);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::means;

    #[test]
    fn test_split_wins_and_perturbations_are_left_out() {
        let text = r#"[
          {"name": {"name": "exact_match", "split": "valid"}, "count": 1, "sum": 0.5, "mean": 0.5},
          {"name": {"name": "exact_match", "split": "test"}, "count": 1, "sum": 0.25, "mean": 0.25},
          {"name": {"name": "exact_match", "split": "test", "perturbation": {"name": "typos"}}, "count": 1, "mean": 0.1},
          {"name": {"name": "num_prompt_tokens", "split": "valid"}, "count": 2, "mean": 31.0},
          {"name": {"name": "no_mean", "split": "test"}, "count": 0}
        ]"#;
        let m = means(text).unwrap();
        assert_eq!(m["exact_match"], 0.25);
        assert_eq!(m["num_prompt_tokens"], 31.0);
        assert!(!m.contains_key("no_mean"));
    }
}
