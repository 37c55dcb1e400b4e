//! `tuna gc [--keep N] [--runner NAME]... [--local-only] [--dry-run] [--json]`: drop old runs,
//! attempt folders other than each step's last, cache entries of dropped runs, and every
//! artifact nothing kept refers to, here and on the ssh runners' hosts (see
//! [`Engine::gc`](crate::engine::Engine::gc)).
//!
//! Exit code: 0 when this machine was cleaned, also when some hosts could not be (each is
//! reported); 3 when hosts were named with `--runner` and not one of them could be cleaned.

use super::args::Cli;
use super::exit::{ENVIRONMENT, Fail, OK};
use crate::engine::{GcHosts, GcOptions, GcReport, HostState};

pub fn gc(
    cli: &Cli,
    keep: Option<usize>,
    runners: &[String],
    local_only: bool,
    dry_run: bool,
    json: bool,
) -> Result<u8, Fail> {
    let engine = super::open::open_engine(cli, true)?;
    let hosts = if local_only {
        GcHosts::None
    } else if runners.is_empty() {
        GcHosts::All
    } else {
        GcHosts::Named(runners.to_vec())
    };
    let report = engine.gc(&GcOptions {
        keep,
        dry_run,
        hosts,
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print(&report);
    }
    let none_cleaned = report.hosts.iter().all(|h| h.state != HostState::Cleaned);
    Ok(if !runners.is_empty() && none_cleaned {
        ENVIRONMENT
    } else {
        OK
    })
}

fn print(report: &GcReport) {
    let l = &report.local;
    let (verb, prefix) = if report.dry_run {
        ("would remove", "dry run: ")
    } else {
        ("removed", "")
    };
    println!(
        "{prefix}{verb} {} runs, {} old attempt folders, {} cache entries, {} blobs ({} bytes)",
        l.runs_removed.len(),
        l.attempt_dirs_removed,
        l.cache_entries_removed,
        l.blobs_removed,
        l.bytes_freed
    );
    if l.snapshots_removed > 0 {
        println!(
            "{prefix}{verb} {} submission snapshots no run or schedule uses",
            l.snapshots_removed
        );
    }
    if report.dry_run {
        for run in &l.runs_removed {
            println!("  run {run}");
        }
    }
    for h in &report.hosts {
        let reason = h.reason.as_deref().unwrap_or("");
        match h.state {
            HostState::Cleaned => {
                println!(
                    "host of runner `{}`: {verb} {} blobs ({} bytes), {} attempt folders",
                    h.runner, h.blobs_removed, h.bytes_freed, h.attempt_dirs_removed
                );
                if report.dry_run {
                    for b in &h.blobs {
                        println!("  blob {b}");
                    }
                    for a in &h.attempt_dirs {
                        println!("  attempt folder runs/{a}");
                    }
                }
            }
            HostState::Unreachable => {
                println!(
                    "host of runner `{}`: unreachable, skipped: {reason}",
                    h.runner
                )
            }
            HostState::Busy => println!("host of runner `{}`: busy, skipped: {reason}", h.runner),
            HostState::Failed => println!("host of runner `{}`: failed: {reason}", h.runner),
        }
    }
}
