//! `tuna schedule add|list|remove`: cron schedules registered with a daemon.

use super::args::{Cli, ScheduleCommand};
use super::client::Client;
use super::exit::{Fail, OK};

pub fn schedule(cli: &Cli, cmd: &ScheduleCommand) -> Result<u8, Fail> {
    let client = Client::required(cli, "tuna schedule")?;
    match cmd {
        ScheduleCommand::Add { file, params } => {
            let body = super::project::submission(&client, file, params)?;
            let v = client.post("/api/v1/schedules", &body)?;
            print_scheduled(&v);
        }
        ScheduleCommand::List { json } => {
            let v = client.get("/api/v1/schedules")?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
                return Ok(OK);
            }
            println!(
                "{:<24} {:<16} {:<18} {:<16} {:<24} NEXT",
                "WORKFLOW", "CRON", "TIMEZONE", "MISSED/CONC", "PROJECT"
            );
            for s in v.as_array().into_iter().flatten() {
                let next = next_fires(s);
                println!(
                    "{:<24} {:<16} {:<18} {:<16} {:<24} {}",
                    s["name"].as_str().unwrap_or(""),
                    s["cron"].as_str().unwrap_or(""),
                    s["timezone"].as_str().unwrap_or(""),
                    format!(
                        "{}/{}",
                        s["missed"].as_str().unwrap_or(""),
                        s["concurrency"].as_str().unwrap_or("")
                    ),
                    snapshot(s),
                    next
                );
            }
        }
        ScheduleCommand::Remove { name } => {
            if !crate::workflow::names::valid_workflow(name) {
                let why = crate::workflow::names::problem("schedule", name, "[a-z0-9-]+");
                return Err(Fail::invalid(format!("error: {why}")));
            }
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

/// A schedule's project snapshot: the start of its digest and its file count.
fn snapshot(v: &serde_json::Value) -> String {
    let digest = v["snapshot"]["digest"].as_str().unwrap_or("");
    let hex = digest.rsplit(':').next().unwrap_or("");
    match v["snapshot"]["files"].as_u64() {
        Some(n) => format!("{} ({n} files)", &hex[..hex.len().min(12)]),
        None => "-".into(),
    }
}

/// The line that confirms a registered schedule.
pub(super) fn print_scheduled(v: &serde_json::Value) {
    println!(
        "scheduled {} with project {}; next fires: {}",
        v["name"].as_str().unwrap_or(""),
        snapshot(v),
        next_fires(v)
    );
}
