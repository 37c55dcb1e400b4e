//! The dashboard: server-rendered HTML pages with a little inline JS and SVG (no CDN; works
//! offline). Runs, a run's DAG coloured by step status (refreshed live), a step's live log
//! (server-sent events), schedules, and the leaderboard with a trend chart per metric.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Html;

use super::api::{ApiError, App, BoardQuery, blocking, board, check_run, check_step, run_detail};
use super::html::esc;
use super::svg::{dag_svg, status_colour, trend_svg};
use crate::engine::RunSummary;

fn page(title: &str, body: &str, script: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t} · tuna</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}}
nav{{background:#24292f;padding:8px 16px}} nav a{{color:#fff;margin-right:16px;text-decoration:none}}
main{{padding:16px}} table{{border-collapse:collapse;background:#fff}}
td,th{{border:1px solid #d0d7de;padding:4px 8px;text-align:left}}
.badge{{color:#fff;border-radius:8px;padding:1px 8px;font-size:12px}}
pre{{background:#0d1117;color:#e6edf3;padding:8px;overflow:auto;max-height:70vh}}
.reg{{color:#cf222e;font-weight:bold}} svg{{background:#fff;border:1px solid #d0d7de}}
</style></head>
<body><nav><a href="/">runs</a><a href="/schedules">schedules</a><a href="/leaderboard">leaderboard</a></nav>
<main><h1>{t}</h1>
{body}</main>
<script>{script}</script></body></html>"#,
        t = esc(title)
    ))
}

fn badge(status: &str) -> String {
    format!(
        r#"<span class="badge" style="background:{}">{}</span>"#,
        status_colour(status),
        esc(status)
    )
}

fn secs(d: Option<f64>) -> String {
    d.map(crate::engine::fmt_secs).unwrap_or_else(|| "-".into())
}

pub async fn runs_page(State(app): State<App>) -> Result<Html<String>, ApiError> {
    let mut list = blocking(move || Ok(RunSummary::list(&app.engine.store)?)).await?;
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let mut rows = String::new();
    for r in list.iter().take(500) {
        rows.push_str(&format!(
            r#"<tr class="run" data-status="{s}"><td><a href="/runs/{id}">{id}</a></td><td>{wf}</td><td>{b}</td><td>{d}</td><td>{p} passed, {c} cached, {f} failed of {n}</td><td>-</td></tr>"#,
            s = esc(&r.status),
            id = esc(&r.id),
            wf = esc(&r.workflow),
            b = badge(&r.status),
            d = secs(r.duration_s),
            p = r.passed,
            c = r.cached,
            f = r.failed,
            n = r.steps
        ));
    }
    let body = format!(
        "<table id=\"runs\"><tr><th>run</th><th>workflow</th><th>status</th><th>time</th><th>steps</th><th>cost</th></tr>{rows}</table>"
    );
    Ok(page("runs", &body, ""))
}

pub async fn run_page(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    check_run(&id)?;
    let rid = id.clone();
    let v = blocking(move || run_detail(&app, &rid)).await?;
    let mut statuses = BTreeMap::new();
    let mut table = String::new();
    for s in v["steps"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or("");
        let status = s["status"].as_str().unwrap_or("");
        statuses.insert(name.to_string(), status.to_string());
        let metrics: Vec<String> = s["metrics"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, x)| format!("{k}={x}"))
            .collect();
        table.push_str(&format!(
            r#"<tr><td><a href="/runs/{id}/steps/{n}">{n}</a></td><td id="st-{n}">{b}</td><td>{a}</td><td>{m}</td><td>{msg}</td></tr>"#,
            id = esc(&id),
            n = esc(name),
            b = badge(status),
            a = s["attempt"],
            m = esc(&metrics.join(" ")),
            msg = esc(s["message"].as_str().unwrap_or(""))
        ));
    }
    let needs: BTreeMap<String, Vec<String>> =
        serde_json::from_value(v["needs"].clone()).unwrap_or_default();
    let svg = dag_svg(&needs, &statuses);
    let status = v["status"].as_str().unwrap_or("");
    let body = format!(
        r#"<p>workflow <b>{wf}</b> · <span id="run-status">{b}</span> · {d} · {gh:.2} GPU-hours · cost {cost:.2}</p>
<div id="dag">{svg}</div>
<table id="steps"><tr><th>step</th><th>status</th><th>attempt</th><th>metrics</th><th>note</th></tr>{table}</table>"#,
        wf = esc(v["workflow"].as_str().unwrap_or("")),
        b = badge(status),
        d = secs(v["duration_s"].as_f64()),
        gh = v["gpu_hours"].as_f64().unwrap_or(0.0),
        cost = v["cost"].as_f64().unwrap_or(0.0),
    );
    let script = format!(
        r#"const COLOURS={colours};
async function refresh(){{
  const r=await fetch('/api/v1/runs/{id}');
  if(!r.ok) return;
  const v=await r.json();
  for(const s of v.steps){{
    const g=document.querySelector('g.node[data-step="'+CSS.escape(s.name)+'"]');
    if(g){{g.dataset.status=s.status;g.querySelector('rect').setAttribute('fill',COLOURS[s.status]||'#8c959f');g.querySelector('title').textContent=s.name+': '+s.status;}}
  }}
  document.body.dataset.refreshed=v.status;
  if(v.status==='running') setTimeout(refresh,1000);
}}
refresh();"#,
        colours = super::svg::colours_json(),
        id = esc(&id)
    );
    Ok(page(&format!("run {id}"), &body, &script))
}

pub async fn log_page(
    State(_app): State<App>,
    Path((id, step)): Path<(String, String)>,
) -> Result<Html<String>, ApiError> {
    check_run(&id)?;
    check_step(&step)?;
    let body = format!(
        r#"<p><a href="/runs/{id}">run {id}</a> · step <b>{step}</b> · <span id="state">following…</span></p><pre id="log"></pre>"#,
        id = esc(&id),
        step = esc(&step)
    );
    let script = format!(
        r#"const pre=document.getElementById('log');
const es=new EventSource('/api/v1/runs/{id}/steps/{step}/log/stream');
es.addEventListener('log',e=>{{pre.textContent+=JSON.parse(e.data).text;pre.scrollTop=pre.scrollHeight;}});
es.addEventListener('end',e=>{{document.getElementById('state').textContent='ended: '+JSON.parse(e.data).status;es.close();}});
es.onerror=()=>{{document.getElementById('state').textContent='disconnected';}};"#,
        id = esc(&id),
        step = esc(&step)
    );
    Ok(page(&format!("{step} log"), &body, &script))
}

pub async fn schedules_page(State(app): State<App>) -> Result<Html<String>, ApiError> {
    let list = blocking(move || Ok(app.scheduler.list(3)?)).await?;
    let mut rows = String::new();
    for s in &list {
        let recent: Vec<String> = s
            .recent
            .iter()
            .take(3)
            .map(|f| match &f.state {
                crate::store::FireState::Started { run } => format!(
                    r#"{} → <a href="/runs/{r}">{r}</a>"#,
                    esc(&f.scheduled_time),
                    r = esc(run)
                ),
                crate::store::FireState::Skipped { reason } => {
                    format!("{} skipped ({})", esc(&f.scheduled_time), esc(reason))
                }
                crate::store::FireState::Claimed => format!("{} starting", esc(&f.scheduled_time)),
            })
            .collect();
        rows.push_str(&format!(
            "<tr class=\"schedule\"><td>{}</td><td><code>{}</code> ({})</td><td>{:?} / {:?}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            esc(&s.cron),
            esc(&s.timezone),
            s.missed,
            s.concurrency,
            esc(&s.next.join(", ")),
            recent.join("<br>")
        ));
    }
    let body = format!(
        "<table id=\"schedules\"><tr><th>workflow</th><th>cron</th><th>missed / concurrency</th><th>next fires</th><th>recent fires</th></tr>{rows}</table>"
    );
    Ok(page("schedules", &body, ""))
}

pub async fn leaderboard_page(
    State(app): State<App>,
    Query(q): Query<BoardQuery>,
) -> Result<Html<String>, ApiError> {
    let b = blocking(move || board(&app, &q)).await?;
    let mut rows = String::new();
    for e in &b.entries {
        rows.push_str(&format!(
            "<tr class=\"entry{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if e.regression { " reg" } else { "" },
            esc(&e.suite),
            esc(&e.model),
            esc(&e.metric),
            esc(&e.night),
            e.value,
            e.delta
                .map(|d| format!("{d:+.4}{}", if e.regression { " regression" } else { "" }))
                .unwrap_or_else(|| "-".into())
        ));
    }
    let mut charts = String::new();
    let mut metrics: BTreeMap<(String, String), Vec<&crate::store::LeaderRow>> = BTreeMap::new();
    for r in &b.history {
        metrics
            .entry((r.suite.clone(), r.metric.clone()))
            .or_default()
            .push(r);
    }
    for ((suite, metric), rows) in &metrics {
        charts.push_str(&format!(
            "<h2>{} · {}</h2>{}",
            esc(suite),
            esc(metric),
            trend_svg(metric, rows)
        ));
    }
    let body = format!(
        "<p>latest score per model and metric; regression = a drop of more than {} since the previous night</p><table id=\"board\"><tr><th>suite</th><th>model</th><th>metric</th><th>night</th><th>score</th><th>change</th></tr>{rows}</table>{charts}",
        b.threshold
    );
    Ok(page("leaderboard", &body, ""))
}
