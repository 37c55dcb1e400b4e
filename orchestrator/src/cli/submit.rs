//! `tuna submit FILE`: sends a workflow to a daemon; with `--follow`, waits for the run and
//! exits like `tuna run` (0 passed, 1 failed, 130 cancelled or interrupted).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::args::Cli;
use super::client::Client;
use super::exit::{Fail, INTERRUPTED, OK, RUN_FAILED};

pub fn submit(
    cli: &Cli,
    file: &Path,
    params: &[(String, String)],
    follow: bool,
    no_cache: bool,
) -> Result<u8, Fail> {
    let client = Client::required(cli, "tuna submit")?;
    let mut body = super::project::submission(&client, file, params)?;
    body["no_cache"] = json!(no_cache);
    let v = client.post_idempotent("/api/v1/runs", &body)?;
    if v["kind"] == "schedule" {
        super::schedule::print_scheduled(&v);
        return Ok(OK);
    }
    let id = v["id"].as_str().unwrap_or_default().to_string();
    println!("{id}");
    if !follow {
        return Ok(OK);
    }
    follow_run(&client, &id)
}

/// Prints each step's status changes until the run ends; its exit code.
pub fn follow_run(client: &Client, id: &str) -> Result<u8, Fail> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let v = client.get(&format!("/api/v1/runs/{id}"))?;
        for s in v["steps"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or("").to_string();
            let status = s["status"].as_str().unwrap_or("").to_string();
            if seen.get(&name) != Some(&status) {
                let msg = s["message"]
                    .as_str()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                eprintln!("{name}: {status}{msg}");
                seen.insert(name, status);
            }
        }
        match v["status"].as_str().unwrap_or("") {
            "running" => std::thread::sleep(Duration::from_millis(250)),
            "passed" => return Ok(OK),
            "failed" => return Ok(RUN_FAILED),
            _ => return Ok(INTERRUPTED),
        }
    }
}
