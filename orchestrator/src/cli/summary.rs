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
    let lines: Vec<(&StepRecord, String)> = steps
        .iter()
        .map(|s| (s, step_line(s)))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let keep = kept(
        &lines
            .iter()
            .map(|(s, _)| !s.metrics.is_empty())
            .collect::<Vec<_>>(),
    );
    let width = lines.iter().map(|(s, _)| s.step.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, (s, line)) in lines.iter().enumerate() {
        if keep[i] {
            let _ = writeln!(out, "  {:width$}  {line}", s.step);
        }
    }
    let hidden = keep.iter().filter(|k| !**k).count();
    if hidden > 0 {
        let _ = writeln!(out, "  … and {hidden} more steps (tuna status {run_id})");
    }
    let pull = steps
        .iter()
        .rev()
        .find(|s| s.status.is_done() && !s.outputs.is_empty())
        .map(|s| format!(" · tuna pull {run_id} {} --to DIR", s.step))
        .unwrap_or_default();
    format!("results:\n{out}next: tuna status {run_id} · tuna logs {run_id} STEP{pull}\n")
}

/// At most this many result lines; a run of 1,000 steps shows a screenful.
const LINES: usize = 20;

/// Which of the result lines to show (`with_numbers[i]`: line `i` has numbers): all when they
/// fit, else the last ones with numbers (what a run is for: evaluations come last), then the
/// last others, in the order they ran.
fn kept(with_numbers: &[bool]) -> Vec<bool> {
    let mut keep = vec![with_numbers.len() <= LINES; with_numbers.len()];
    if with_numbers.len() <= LINES {
        return keep;
    }
    let mut room = LINES;
    for want in [true, false] {
        for i in (0..with_numbers.len()).rev() {
            if room > 0 && !keep[i] && with_numbers[i] == want {
                keep[i] = true;
                room -= 1;
            }
        }
    }
    keep
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
    use super::{LINES, kept, num};

    #[test]
    fn a_long_run_shows_its_last_numbers_first_then_its_last_other_lines() {
        assert_eq!(kept(&[true, false]), vec![true, true]);
        let mut lines = vec![false; 1000];
        lines[3] = true;
        lines[997] = true;
        let keep = kept(&lines);
        assert_eq!(keep.iter().filter(|k| **k).count(), LINES);
        assert!(keep[3] && keep[997] && keep[999] && !keep[4]);
        assert_eq!(keep[980..].iter().filter(|k| **k).count(), LINES - 1);
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(num(512.0), "512");
        assert_eq!(num(3.21456), "3.215");
        assert_eq!(num(0.0123456), "0.01235");
        assert_eq!(num(0.31), "0.31");
        assert_eq!(num(12345.6), "12346");
    }
}
