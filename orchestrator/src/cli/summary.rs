//! What `tuna run` and `tuna resume` print when a run ends, after the counts: per step its
//! headline numbers (loss first → last, eval loss, projected GPU hours, scores) and where its
//! outputs are, then the commands that go further.

use std::fmt::Write;

use crate::store::{StepRecord, StepStatus, Store};

/// Metrics shown by name, in this order, when a step has them; others follow alphabetically.
const FIRST: &[&str] = &["eval_loss", "accuracy", "exact_match", "tokens_per_s"];

/// At most this many numbers a step.
const SHOWN: usize = 4;

/// The summary of `run_id`'s steps (empty when no step has a number or an output).
pub fn summary(store: &Store, run_id: &str) -> String {
    let Ok(mut steps) = store.steps(run_id) else {
        return String::new();
    };
    // In the order they ran (steps that never started last).
    steps.sort_by_key(|s| (s.started_at.is_none(), s.started_at));
    let width = steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in &steps {
        let line = step_line(s);
        if !line.is_empty() {
            let _ = writeln!(out, "  {:width$}  {line}", s.step);
        }
    }
    if out.is_empty() {
        return out;
    }
    let pull = steps
        .iter()
        .rev()
        .find(|s| s.status.is_done() && !s.outputs.is_empty())
        .map(|s| format!(" · tuna pull {run_id} {} --to DIR", s.step))
        .unwrap_or_default();
    format!("results:\n{out}next: tuna status {run_id} · tuna logs {run_id} STEP{pull}\n")
}

fn step_line(s: &StepRecord) -> String {
    let mut parts: Vec<String> = Vec::new();
    let m = &s.metrics;
    if let (Some(a), Some(b)) = (m.get("loss_first"), m.get("loss_last")) {
        parts.push(format!("loss {} → {}", num(*a), num(*b)));
    }
    let mut rest: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "loss_first" | "loss_last"))
        .collect();
    rest.sort_by_key(|(k, _)| {
        let rank = FIRST
            .iter()
            .position(|f| f == k)
            .or_else(|| k.starts_with("projected_hours").then_some(FIRST.len()))
            .unwrap_or(usize::MAX);
        (rank, k.to_string())
    });
    for (k, v) in rest {
        if parts.len() >= SHOWN {
            break;
        }
        parts.push(format!("{k} {}", num(*v)));
    }
    let hidden = m
        .len()
        .saturating_sub(parts.len() + usize::from(m.contains_key("loss_first")));
    if hidden > 0 {
        parts.push(format!("(+{hidden} more)"));
    }
    if s.status == StepStatus::Cached {
        parts.push("(cached)".into());
    }
    if let Some(dir) = s.outputs_dir.as_ref().filter(|_| !s.outputs.is_empty()) {
        let names: Vec<&str> = s.outputs.keys().map(String::as_str).collect();
        parts.push(format!("→ {} in {}", names.join(", "), dir.display()));
    }
    parts.join(", ")
}

/// A number as people read it: whole numbers as they are, others with 4 significant digits.
fn num(v: f64) -> String {
    super::inspect::significant(v, 4)
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(num(512.0), "512");
        assert_eq!(num(3.21456), "3.215");
        assert_eq!(num(0.0123456), "0.01235");
        assert_eq!(num(0.31), "0.31");
        assert_eq!(num(12345.6), "12346");
    }
}
