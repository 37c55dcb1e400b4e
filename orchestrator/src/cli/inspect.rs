//! Commands that look at runs: runs, status, logs, cancel, each through an [`Access`] (the
//! store, its owner, or a daemon).

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::access::Access;
use super::args::Cli;
use super::client::Client;
use super::exit::{Fail, OK};
use crate::engine::{Request, RunView, fmt_secs};

/// One run through a way in that answers.
fn access_view(cli: &Cli, run: &str) -> Result<(Access, RunView), Fail> {
    Access::read(cli, |a| a.view(run))
}

pub fn runs(cli: &Cli, json: bool) -> Result<u8, Fail> {
    let (_, list) = Access::read(cli, Access::summaries)?;
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
    let mut owned = matches!(a, Access::Remote { .. });
    drop(a);
    loop {
        pos += copy_from(&path, pos, &mut out);
        if !follow || !owned {
            break;
        }
        // A run whose owner went away (it ended) has nothing more to follow.
        let (now, v) = Access::read(cli, |a| a.view(&v.id))?;
        owned = matches!(now, Access::Remote { .. });
        drop(now);
        let done = !owned
            || v.status != "running"
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
    let (a, id) = Access::read(cli, |a| match a {
        Access::Server(_) => Ok(a.view(run)?.id),
        Access::Remote { .. } => {
            let req = Request::Cancel {
                run: run.to_string(),
            };
            a.ask(&req, |m| Fail::invalid(format!("error: {m}")))?;
            Ok(run.to_string())
        }
        Access::Local(_) => Ok(run.to_string()),
    })?;
    match a {
        Access::Server(c) => {
            c.post(&format!("/api/v1/runs/{id}/cancel"), &serde_json::json!({}))?;
            println!("cancelling {id}");
        }
        Access::Remote { .. } => println!("cancelling {id}"),
        Access::Local(store) => {
            // On the store read already: no other process can take it in between.
            let engine = super::open::open_engine_on(cli, store, true)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let n = rt.block_on(engine.cancel_detached(&id))?;
            println!("cancelled {id} ({n} running steps stopped)");
        }
    }
    Ok(OK)
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
