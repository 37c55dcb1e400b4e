//! `tuna leaderboard`: the board from a daemon (`--server`) or from the local store.

use super::args::{BoardFormat, Cli};
use super::client::{Client, enc};
use super::exit::{Fail, OK};
use crate::engine::Board;
use crate::store::{Store, StoreError};

pub fn leaderboard(
    cli: &Cli,
    format: BoardFormat,
    threshold: f64,
    suite: Option<&str>,
) -> Result<u8, Fail> {
    let board: Board = match Client::from_cli(cli) {
        Some(c) => {
            let mut path = format!("/api/v1/leaderboard?threshold={threshold}");
            if let Some(s) = suite {
                path.push_str(&format!("&suite={}", enc(s)));
            }
            serde_json::from_value(c.get(&path)?)
                .map_err(|e| Fail::env(format!("error: bad answer from the daemon: {e}")))?
        }
        None => {
            let home = super::open::home(cli);
            let store = match Store::open(&home.db()) {
                Ok(s) => s,
                Err(StoreError::Locked { pid, .. }) => {
                    return Err(Fail::env(format!(
                        "error: the store is owned by tuna process {pid} (a daemon?); use --server URL"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let mut rows = store.leader_rows()?;
            if let Some(s) = suite {
                rows.retain(|r| r.suite == s);
            }
            Board::build(rows, threshold)
        }
    };
    match format {
        BoardFormat::Json => println!("{}", serde_json::to_string_pretty(&board).expect("json")),
        BoardFormat::Csv => print!("{}", board.to_csv()),
        BoardFormat::Table => {
            // Columns as wide as their longest value.
            let width = |head: &str, f: &dyn Fn(&crate::engine::BoardEntry) -> usize| {
                board
                    .entries
                    .iter()
                    .map(f)
                    .max()
                    .unwrap_or(0)
                    .max(head.len())
            };
            let ws = width("SUITE", &|e| e.suite.len());
            let wm = width("MODEL", &|e| e.model.len());
            let wt = width("METRIC", &|e| e.metric.len());
            println!(
                "{:<ws$}  {:<wm$}  {:<wt$}  {:<10}  {:>10}  {:>10}  FLAG",
                "SUITE", "MODEL", "METRIC", "NIGHT", "SCORE", "CHANGE"
            );
            for e in &board.entries {
                println!(
                    "{:<ws$}  {:<wm$}  {:<wt$}  {:<10}  {:>10.4}  {:>10}  {}",
                    e.suite,
                    e.model,
                    e.metric,
                    e.night,
                    e.value,
                    e.delta
                        .map(|d| format!("{d:+.4}"))
                        .unwrap_or_else(|| "-".into()),
                    if e.regression { "REGRESSION" } else { "" }
                );
            }
        }
    }
    Ok(OK)
}
