//! The cost ledger: GPU-hours and money per attempt, step and run (wall time × GPUs × the
//! runner's `price_per_hour`, which is per GPU), and the budget check made before a dispatch.

use serde::{Deserialize, Serialize};

use crate::store::{AttemptRecord, StepRecord};
use crate::workflow::Budget;

/// GPU-hours and cost, summed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Cost {
    pub gpu_hours: f64,
    pub cost: f64,
}

impl Cost {
    fn add(self, other: Cost) -> Cost {
        Cost {
            gpu_hours: self.gpu_hours + other.gpu_hours,
            cost: self.cost + other.cost,
        }
    }

    /// One attempt; one still running counts up to `now_ms`.
    pub fn of_attempt(a: &AttemptRecord, now_ms: u64) -> Cost {
        let hours = a.ended_at.unwrap_or(now_ms).saturating_sub(a.started_at) as f64 / 3.6e6;
        let gpu_hours = hours * a.gpus.len() as f64;
        Cost {
            gpu_hours,
            cost: gpu_hours * a.price_per_hour,
        }
    }

    /// Every attempt of a step.
    pub fn of_step(r: &StepRecord, now_ms: u64) -> Cost {
        r.attempts
            .iter()
            .map(|a| Cost::of_attempt(a, now_ms))
            .fold(Cost::default(), Cost::add)
    }

    /// Every step of a run.
    pub fn of_run<'a>(steps: impl IntoIterator<Item = &'a StepRecord>, now_ms: u64) -> Cost {
        steps
            .into_iter()
            .map(|r| Cost::of_step(r, now_ms))
            .fold(Cost::default(), Cost::add)
    }
}

/// Whether starting a step that may add `next` keeps the run within `budget`; the message says
/// what was spent and what the limit is when it does not.
pub fn check_budget(budget: &Budget, spent: Cost, next: Cost) -> Result<(), String> {
    let after = spent.add(next);
    if let Some(max) = budget.max_gpu_hours
        && after.gpu_hours > max
    {
        return Err(format!(
            "budget: not started, it would exceed max_gpu_hours {max} (spent {:.4} GPU-hours{})",
            spent.gpu_hours,
            if next.gpu_hours > 0.0 {
                format!(", this step may take up to {:.4} more", next.gpu_hours)
            } else {
                String::new()
            }
        ));
    }
    if let Some(max) = budget.max_cost
        && after.cost > max
    {
        return Err(format!(
            "budget: not started, it would exceed max_cost {max} (spent {:.4}{})",
            spent.cost,
            if next.cost > 0.0 {
                format!(", this step may cost up to {:.4} more", next.cost)
            } else {
                String::new()
            }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(ms: u64, gpus: usize, price: f64) -> AttemptRecord {
        AttemptRecord {
            n: 1,
            runner: "r".into(),
            dir: "/x".into(),
            started_at: 1_000,
            ended_at: Some(1_000 + ms),
            outcome: None,
            gpus: (0..gpus as u32)
                .map(|index| tuna_runners::Gpu {
                    kind: "a100".into(),
                    index,
                })
                .collect(),
            price_per_hour: price,
        }
    }

    #[test]
    fn wall_time_times_gpus_times_price() {
        let c = Cost::of_attempt(&attempt(1_800_000, 2, 3.0), 0);
        assert!((c.gpu_hours - 1.0).abs() < 1e-9);
        assert!((c.cost - 3.0).abs() < 1e-9);
        assert_eq!(Cost::of_attempt(&attempt(1_800_000, 0, 3.0), 0).cost, 0.0);
    }

    #[test]
    fn the_budget_stops_what_would_exceed_it() {
        let b = Budget {
            max_gpu_hours: None,
            max_cost: Some(10.0),
        };
        let spent = Cost {
            gpu_hours: 3.0,
            cost: 9.0,
        };
        assert!(check_budget(&b, spent, Cost::default()).is_ok());
        let err = check_budget(
            &b,
            spent,
            Cost {
                gpu_hours: 1.0,
                cost: 2.0,
            },
        )
        .unwrap_err();
        assert!(err.contains("max_cost 10"), "{err}");
        let spent_all = Cost {
            gpu_hours: 4.0,
            cost: 10.5,
        };
        assert!(check_budget(&b, spent_all, Cost::default()).is_err());
    }
}
