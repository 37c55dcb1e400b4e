//! Commands that look at runs: runs, status, logs, cancel. They read the store directly when
//! no other tuna process owns it, ask the owner over its control socket when one does, and
//! ask a daemon over HTTP with `--server`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::args::Cli;
use super::client::Client;
use super::exit::{Fail, OK};
use crate::engine::{Request, RunSummary, RunView, fmt_secs, request};
use crate::store::{Store, StoreError};

enum Access {
    Local(Store),
    Remote(PathBuf),
    Server(Client),
}

fn access(cli: &Cli) -> Result<Access, Fail> {
    if let Some(c) = Client::from_cli(cli) {
        return Ok(Access::Server(c));
    }
    let home = super::open::home(cli);
    if !home.db().exists() {
        return Err(Fail::invalid(format!(
            "error: no tuna store at {} (run a workflow first, or set --home)",
            home.root.display()
        )));
    }
    match Store::open(&home.db()) {
        Ok(s) => Ok(Access::Local(s)),
        Err(StoreError::Locked { .. }) => Ok(Access::Remote(home.control_socket())),
        Err(e) => Err(e.into()),
    }
}

/// The run's view and how it was read. A run's owner can end between the store's lock check
/// and the request to its control socket (a command started as the run finishes): the store,
/// free by then, is read instead.
fn access_view(cli: &Cli, run: &str) -> Result<(Access, RunView), Fail> {
    let a = access(cli)?;
    match view(&a, run) {
        Ok(v) => Ok((a, v)),
        Err(e) if matches!(a, Access::Remote(_)) => match access(cli)? {
            Access::Remote(_) => Err(e),
            again => {
                let v = view(&again, run)?;
                Ok((again, v))
            }
        },
        Err(e) => Err(e),
    }
}

fn summaries(a: &Access) -> Result<Vec<RunSummary>, Fail> {
    match a {
        Access::Local(s) => Ok(RunSummary::list(s)?),
        Access::Remote(sock) => {
            let v = request(sock, &Request::Runs).map_err(Fail::env)?;
            serde_json::from_value(v).map_err(|e| Fail::env(e.to_string()))
        }
        Access::Server(c) => {
            let mut list: Vec<RunSummary> = serde_json::from_value(c.get("/api/v1/runs")?)
                .map_err(|e| Fail::env(e.to_string()))?;
            list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            Ok(list)
        }
    }
}

fn view(a: &Access, run: &str) -> Result<RunView, Fail> {
    let run = if run == "last" {
        summaries(a)?
            .into_iter()
            .max_by(|x, y| x.created_at.cmp(&y.created_at).then(x.id.cmp(&y.id)))
            .ok_or_else(|| Fail::invalid("error: there are no runs"))?
            .id
    } else {
        run.to_string()
    };
    match a {
        Access::Local(s) => RunView::load(s, &run)?
            .ok_or_else(|| Fail::invalid(format!("error: run `{run}` not found"))),
        Access::Remote(sock) => {
            let v = request(sock, &Request::Status { run }).map_err(Fail::invalid)?;
            serde_json::from_value(v).map_err(|e| Fail::env(e.to_string()))
        }
        Access::Server(c) => {
            if !crate::daemon::valid_run_id(&run) {
                return Err(Fail::invalid(format!("error: `{run}` is not a run id")));
            }
            serde_json::from_value(c.get(&format!("/api/v1/runs/{run}"))?)
                .map_err(|e| Fail::env(e.to_string()))
        }
    }
}

pub fn runs(cli: &Cli, json: bool) -> Result<u8, Fail> {
    let list = summaries(&access(cli)?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list).expect("json"));
        return Ok(OK);
    }
    println!(
        "{:<22} {:<24} {:<12} {:>9}  STEPS",
        "RUN", "WORKFLOW", "STATUS", "TIME"
    );
    for r in &list {
        println!(
            "{:<22} {:<24} {:<12} {:>9}  {} passed, {} cached, {} failed of {}",
            r.id,
            r.workflow,
            r.status,
            r.duration_s.map(fmt_secs).unwrap_or_else(|| "-".into()),
            r.passed,
            r.cached,
            r.failed,
            r.steps
        );
    }
    Ok(OK)
}

pub fn status(cli: &Cli, run: &str, json: bool) -> Result<u8, Fail> {
    let (_, v) = access_view(cli, run)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(OK);
    }
    let time = v
        .duration_s
        .map(|d| format!(" in {}", fmt_secs(d)))
        .unwrap_or_default();
    println!("run {} ({}) {}{}", v.id, v.workflow, v.status, time);
    let w = v
        .steps
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:w$}  {:<10} {:>7}  {:<10} {:>8}  NOTE",
        "STEP", "STATUS", "ATTEMPT", "RUNNER", "TIME"
    );
    for s in &v.steps {
        let mut note = s.message.clone().unwrap_or_default();
        if note.is_empty() && !s.reasons.is_empty() {
            note = format!("ran: {}", s.reasons.join("; "));
        }
        if let Some(p) = &s.progress {
            note = if note.is_empty() {
                p.line()
            } else {
                format!("{}; {note}", p.line())
            };
        }
        if s.gpu_hours > 0.0 {
            let c = format!("{:.4} GPU-h, cost {:.4}", s.gpu_hours, s.cost);
            note = if note.is_empty() {
                c
            } else {
                format!("{note}; {c}")
            };
        }
        if !s.metrics.is_empty() {
            // A table line stays readable: the first few metrics, the rest in `--json`.
            const SHOWN: usize = 8;
            let mut m: Vec<String> = s
                .metrics
                .iter()
                .take(SHOWN)
                .map(|(k, x)| format!("{k}={}", short(*x)))
                .collect();
            if s.metrics.len() > SHOWN {
                m.push(format!("(+{} more: --json)", s.metrics.len() - SHOWN));
            }
            note = if note.is_empty() {
                m.join(" ")
            } else {
                format!("{note}; {}", m.join(" "))
            };
        }
        println!(
            "{:w$}  {:<10} {:>7}  {:<10} {:>8}  {}",
            s.name,
            s.status,
            s.attempt,
            s.runner.as_deref().unwrap_or("-"),
            s.duration_s.map(fmt_secs).unwrap_or_else(|| "-".into()),
            note
        );
    }
    if v.gpu_hours > 0.0 {
        println!("total: {:.4} GPU-hours, cost {:.4}", v.gpu_hours, v.cost);
    }
    Ok(OK)
}

pub fn logs(
    cli: &Cli,
    run: &str,
    step: &str,
    follow: bool,
    stderr: bool,
    attempt: Option<u32>,
) -> Result<u8, Fail> {
    let (a, v) = access_view(cli, run)?;
    if let Access::Server(c) = &a {
        return server_logs(c, &v.id, step, follow, stderr, attempt);
    }
    let s = v
        .steps
        .iter()
        .find(|s| s.name == step)
        .ok_or_else(|| Fail::invalid(format!("error: run `{}` has no step `{step}`", v.id)))?;
    let mut path = if stderr {
        s.stderr.clone()
    } else {
        s.stdout.clone()
    }
    .ok_or_else(|| {
        Fail::invalid(format!(
            "error: step `{step}` has not started (status {})",
            s.status
        ))
    })?;
    if let Some(n) = attempt {
        let file = path.file_name().expect("log file name").to_owned();
        path = path
            .parent()
            .and_then(|p| p.parent())
            .expect("attempt folder")
            .join(n.to_string())
            .join(file);
    }
    let mut pos = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        pos += copy_from(&path, pos, &mut out);
        if !follow {
            break;
        }
        let Access::Remote(_) = &a else { break };
        // The owner going away (its run ended) also ends the follow.
        let Ok(v) = view(&a, &v.id) else {
            copy_from(&path, pos, &mut out);
            break;
        };
        let done = v.status != "running"
            || v.steps.iter().find(|x| x.name == step).is_none_or(|x| {
                !matches!(
                    x.status.as_str(),
                    "running" | "launching" | "pending" | "waiting"
                )
            });
        if done {
            copy_from(&path, pos, &mut out);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(OK)
}

/// Copies a file from `pos` to `out`; the number of bytes copied.
fn copy_from(path: &std::path::Path, pos: u64, out: &mut impl Write) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let n = f.read_to_end(&mut buf).unwrap_or(0);
    let _ = out.write_all(&buf[..n]);
    let _ = out.flush();
    n as u64
}

/// A step's log from a daemon: the file, or (`-f`) its server-sent events until the step ends.
fn server_logs(
    c: &Client,
    run: &str,
    step: &str,
    follow: bool,
    stderr: bool,
    attempt: Option<u32>,
) -> Result<u8, Fail> {
    use std::io::BufRead;
    if !crate::daemon::valid_step(step) {
        return Err(Fail::invalid(format!("error: `{step}` is not a step name")));
    }
    let mut query = format!("?stream={}", if stderr { "stderr" } else { "stdout" });
    if let Some(n) = attempt {
        query.push_str(&format!("&attempt={n}"));
    }
    let mut out = std::io::stdout().lock();
    if !follow {
        let text = c.get_text(&format!("/api/v1/runs/{run}/steps/{step}/log{query}"))?;
        let _ = out.write_all(text.as_bytes());
        return Ok(OK);
    }
    let resp = c.stream(&format!(
        "/api/v1/runs/{run}/steps/{step}/log/stream{query}"
    ))?;
    let mut event = String::new();
    for line in std::io::BufReader::new(resp).lines() {
        let line = line.map_err(|e| Fail::env(format!("error: log stream: {e}")))?;
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap_or_default();
            match event.as_str() {
                "log" => {
                    let _ = out.write_all(v["text"].as_str().unwrap_or("").as_bytes());
                    let _ = out.flush();
                }
                "end" => break,
                _ => {}
            }
        }
    }
    Ok(OK)
}

pub fn cancel(cli: &Cli, run: &str) -> Result<u8, Fail> {
    match access(cli)? {
        Access::Server(c) => {
            let id = view(&Access::Server(c), run)?.id;
            let c = Client::from_cli(cli).expect("server");
            c.post(&format!("/api/v1/runs/{id}/cancel"), &serde_json::json!({}))?;
            println!("cancelling {id}");
            Ok(OK)
        }
        Access::Remote(sock) => {
            request(
                &sock,
                &Request::Cancel {
                    run: run.to_string(),
                },
            )
            .map_err(|e| Fail::invalid(format!("error: {e}")))?;
            println!("cancelling {run}");
            Ok(OK)
        }
        Access::Local(store) => {
            drop(store);
            let engine = super::open::open_engine(cli, true)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let n = rt.block_on(engine.cancel_detached(run))?;
            println!("cancelled {run} ({n} running steps stopped)");
            Ok(OK)
        }
    }
}

/// A metric value for a table: six significant digits, trailing zeros dropped.
fn short(x: f64) -> String {
    significant(x, 6)
}

/// `x` with `digits` significant digits (whole numbers as they are), trailing zeros dropped.
pub(super) fn significant(x: f64, digits: i32) -> String {
    if x == x.trunc() || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (digits - 1 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{x:.decimals$}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn metric_values_keep_six_significant_digits() {
        assert_eq!(short(6.237811889648437), "6.23781");
        assert_eq!(short(2029.6629747895236), "2029.66");
        assert_eq!(short(0.000004636100839942658), "0.0000046361");
        assert_eq!(short(58.0), "58");
        assert_eq!(short(0.25), "0.25");
    }
}
