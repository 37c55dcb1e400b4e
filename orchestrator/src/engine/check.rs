//! `tuna runners check`: every runner of the inventory asked whether it can work, beside the
//! GPUs it declares.

use serde::Serialize;
use tuna_runners::RunnerInfo;

use super::inventory::Inventory;

/// One runner's answer.
#[derive(Debug, Clone, Serialize)]
pub struct RunnerCheck {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `type×count` of the GPUs runners.yaml declares.
    pub declared_gpus: Vec<String>,
    #[serde(flatten)]
    pub info: RunnerInfo,
}

/// Checks every runner of `inventory`, all at once.
pub async fn check_runners(inventory: &Inventory) -> Vec<RunnerCheck> {
    let shim = std::env::current_exe()
        .map(|e| e.with_file_name("tuna-shim"))
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for (name, spec) in &inventory.runners {
        let declared: Vec<String> = spec
            .gpus
            .iter()
            .map(|g| format!("{}×{}", g.kind.to_lowercase(), g.count))
            .collect();
        let slots = spec.slot_count();
        // The declared GPUs, numbered as the engine numbers them (a Ray runner looks for
        // their types on its cluster).
        let mut gpus = Vec::new();
        for g in &spec.gpus {
            for _ in 0..g.count {
                gpus.push(tuna_runners::Gpu {
                    kind: g.kind.to_lowercase(),
                    index: gpus.len() as u32,
                });
            }
        }
        let runner =
            super::runner_build::build(name, spec, slots, gpus, &shim, &Default::default(), None);
        let (name, kind) = (name.clone(), spec.kind.clone());
        tasks.push(tokio::spawn(async move {
            let info = match runner {
                Ok(r) => r.check().await.unwrap_or_else(|e| RunnerInfo {
                    reachable: false,
                    detail: e.to_string(),
                    problem: Some(tuna_runners::CheckProblem::Broken),
                    gpus_found: Vec::new(),
                }),
                Err(e) => RunnerInfo {
                    reachable: false,
                    detail: e,
                    problem: Some(tuna_runners::CheckProblem::Broken),
                    gpus_found: Vec::new(),
                },
            };
            RunnerCheck {
                name,
                kind,
                declared_gpus: declared,
                info,
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(c) = t.await {
            out.push(c);
        }
    }
    out
}
