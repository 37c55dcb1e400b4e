//! `tuna runners check`: can each runner of the inventory work, and which GPUs has it.

use super::args::Cli;
use super::exit::{Fail, OK, RUN_FAILED};
use crate::engine::{Inventory, check_runners};

/// Prints one line per runner (or JSON); exit 1 when any runner cannot work.
pub fn check(cli: &Cli, json: bool) -> Result<u8, Fail> {
    let inventory =
        Inventory::discover(cli.runners.as_deref()).map_err(|e| Fail::invalid(e.to_string()))?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| Fail::env(e.to_string()))?;
    let checks = rt.block_on(check_runners(&inventory));
    let all_ok = checks
        .iter()
        .all(|c| c.info.reachable && c.info.problem.is_none());
    if json {
        println!("{}", serde_json::to_string_pretty(&checks).expect("json"));
    } else {
        let w = checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4)
            .max(6);
        for c in &checks {
            let state = match c.info.problem {
                None if c.info.reachable => "reachable",
                Some(tuna_runners::CheckProblem::AuthFailed) => "auth failed",
                Some(tuna_runners::CheckProblem::HostKeyRefused) => "host key refused",
                Some(tuna_runners::CheckProblem::Unreachable) => "unreachable",
                _ => "broken",
            };
            let found: Vec<String> = c
                .info
                .gpus_found
                .iter()
                .map(|g| match g.memory_mib {
                    Some(m) => format!("{} ({m} MiB)", g.name),
                    None => g.name.clone(),
                })
                .collect();
            println!(
                "{:w$}  {:<5}  {state}; GPUs declared [{}], found [{}]\n{:w$}  {}",
                c.name,
                c.kind,
                c.declared_gpus.join(", "),
                found.join(", "),
                "",
                c.info.detail
            );
        }
    }
    Ok(if all_ok { OK } else { RUN_FAILED })
}
