//! `tuna runners check` for a Ray runner: Ray's version, the cluster's nodes, its total and
//! free resources, and whether each GPU type runners.yaml declares exists on the cluster.
//! Each failure is one message naming the runner (unreachable, token refused, unknown type).
//! A runner whose artifacts are in a bucket also has the bucket checked (reachable, there,
//! credentials allowed to read and write).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use std::sync::Arc;
use std::time::Duration;

use super::client::{NodeInfo, RayError};
use super::runner::{RayRunner, Store};
use crate::{CheckProblem, FoundGpu, RunnerInfo};

/// How long the check of a runner's bucket may take.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(15);

/// The resources of all live nodes together.
pub(crate) fn total(nodes: &[NodeInfo]) -> BTreeMap<String, f64> {
    let mut sum = BTreeMap::new();
    for n in nodes
        .iter()
        .filter(|n| n.state.is_empty() || n.state == "ALIVE")
    {
        for (k, v) in &n.resources_total {
            *sum.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    sum
}

fn failed(e: &RayError) -> RunnerInfo {
    RunnerInfo {
        reachable: false,
        detail: e.to_string(),
        problem: Some(match e {
            RayError::Unreachable { .. } => CheckProblem::Unreachable,
            RayError::Auth { .. } => CheckProblem::AuthFailed,
            _ => CheckProblem::Broken,
        }),
        gpus_found: Vec::new(),
    }
}

/// Shown resources: CPUs, GPUs and GPU-type labels, not Ray's bookkeeping ones.
fn shown(name: &str) -> bool {
    !name.starts_with("node:") && name != "memory" && name != "object_store_memory"
}

/// A resource amount: whole numbers as such, fractions (Ray hands out 0.001 of a GPU type's
/// label) to three places.
fn amount(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round())
    } else {
        format!("{v:.3}")
    }
}

pub(crate) async fn check(runner: &RayRunner) -> RunnerInfo {
    let cfg = &runner.cfg;
    let version = match runner.client.version().await {
        Ok(v) => v,
        Err(e) => return failed(&e),
    };
    let nodes = match runner.client.nodes().await {
        Ok(n) => n,
        Err(e) => return failed(&e),
    };
    let used = runner.client.used().await.unwrap_or_default();
    let total = total(&nodes);
    let alive = nodes
        .iter()
        .filter(|n| n.state.is_empty() || n.state == "ALIVE")
        .count();
    let mut detail = format!("Ray {version} at {}, {alive} node(s) alive;", cfg.address);
    for (k, v) in total.iter().filter(|(k, _)| shown(k)) {
        let free = v - used.get(k).copied().unwrap_or(0.0);
        let _ = write!(detail, " {k} {}/{} free,", amount(free), amount(*v));
    }
    detail.pop();
    let mut problem = None;
    let mut gpus_found = Vec::new();
    let mut kinds: Vec<&str> = cfg.gpus.iter().map(|g| g.kind.as_str()).collect();
    kinds.dedup();
    for kind in kinds {
        let resource = cfg.resource_for(kind);
        match total.get(&resource) {
            Some(n) => {
                for _ in 0..(*n as u64) {
                    gpus_found.push(FoundGpu {
                        name: kind.to_owned(),
                        memory_mib: None,
                    });
                }
                let _ = write!(detail, "; GPU type `{kind}`: {n} ({resource})");
            }
            None => {
                problem = Some(CheckProblem::Broken);
                let _ = write!(
                    detail,
                    "; GPU type `{kind}` declared in runners.yaml is not on the cluster (no node \
                     offers `{resource}`)"
                );
            }
        }
    }
    if let Store::Bucket(store) = &runner.store {
        let store = Arc::clone(store);
        match tokio::task::spawn_blocking(move || store.check(STORE_TIMEOUT)).await {
            Ok(Ok(line)) => {
                let _ = write!(detail, "; artifacts: {line}");
            }
            Ok(Err(e)) => {
                problem = Some(e.problem());
                let _ = write!(detail, "; {e}");
            }
            Err(e) => {
                problem = Some(CheckProblem::Broken);
                let _ = write!(detail, "; checking the artifact store failed: {e}");
            }
        }
    }
    RunnerInfo {
        reachable: true,
        detail,
        problem,
        gpus_found,
    }
}

#[cfg(test)]
mod tests {
    use super::amount;

    #[test]
    fn amounts_read_as_people_write_them() {
        assert_eq!(amount(2.0), "2");
        assert_eq!(amount(2.0 - 0.001), "1.999");
        assert_eq!(amount(1.0000000001), "1");
    }
}
