//! `tuna schedule add|list|remove`: cron schedules registered with a daemon.

use std::collections::BTreeMap;

use serde_json::json;

use super::args::{Cli, ScheduleCommand};
use super::client::Client;
use super::exit::{Fail, OK};

pub fn schedule(cli: &Cli, cmd: &ScheduleCommand) -> Result<u8, Fail> {
    let client = Client::required(cli, "tuna schedule")?;
    match cmd {
        ScheduleCommand::Add { file, params } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Fail::invalid(format!("error: {}: {e}", file.display())))?;
            let params: BTreeMap<String, String> = params.iter().cloned().collect();
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let v = client.post(
                "/api/v1/schedules",
                &json!({ "workflow": text, "params": params, "file": name }),
            )?;
            print_scheduled(&v);
        }
        ScheduleCommand::List { json } => {
            let v = client.get("/api/v1/schedules")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
                return Ok(OK);
            }
            println!(
                "{:<24} {:<16} {:<18} {:<16} NEXT",
                "WORKFLOW", "CRON", "TIMEZONE", "MISSED/CONC"
            );
            for s in v.as_array().into_iter().flatten() {
                let next = next_fires(s);
                println!(
                    "{:<24} {:<16} {:<18} {:<16} {}",
                    s["name"].as_str().unwrap_or(""),
                    s["cron"].as_str().unwrap_or(""),
                    s["timezone"].as_str().unwrap_or(""),
                    format!(
                        "{}/{}",
                        s["missed"].as_str().unwrap_or(""),
                        s["concurrency"].as_str().unwrap_or("")
                    ),
                    next
                );
            }
        }
        ScheduleCommand::Remove { name } => {
            client.delete(&format!("/api/v1/schedules/{}", super::client::enc(name)))?;
            println!("removed {name}");
        }
    }
    Ok(OK)
}

/// A schedule's next fire times (`next` in the API's answer), comma-separated.
fn next_fires(v: &serde_json::Value) -> String {
    let next: Vec<&str> = v["next"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    next.join(", ")
}

/// The line that confirms a registered schedule.
pub(super) fn print_scheduled(v: &serde_json::Value) {
    println!(
        "scheduled {}; next fires: {}",
        v["name"].as_str().unwrap_or(""),
        next_fires(v)
    );
}
