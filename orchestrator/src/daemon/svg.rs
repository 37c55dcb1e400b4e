//! Inline SVG for the dashboard: a run's DAG (layered left to right, each step a box in its
//! status colour) and a leaderboard trend chart (one line per model over the nights).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::html::esc;
use crate::store::LeaderRow;

const COLOURS: &[(&str, &str)] = &[
    ("pending", "#8c959f"),
    ("waiting", "#bf8700"),
    ("launching", "#54aeff"),
    ("running", "#0969da"),
    ("passed", "#1a7f37"),
    ("cached", "#4ac26b"),
    ("failed", "#cf222e"),
    ("timed-out", "#a40e26"),
    ("skipped", "#d4a72c"),
    ("cancelled", "#6e7781"),
    ("interrupted", "#6e7781"),
];

pub fn status_colour(status: &str) -> &'static str {
    COLOURS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("#8c959f", |(_, c)| c)
}

/// The colours as a JSON object, for the page's refresh script.
pub fn colours_json() -> String {
    let m: BTreeMap<&str, &str> = COLOURS.iter().copied().collect();
    serde_json::to_string(&m).expect("json")
}

pub fn dag_svg(
    needs: &BTreeMap<String, Vec<String>>,
    statuses: &BTreeMap<String, String>,
) -> String {
    const W: usize = 150;
    const H: usize = 34;
    const GX: usize = 50;
    const GY: usize = 16;
    let layer = crate::dag::depths_by_name(needs);
    let mut columns: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
    for (s, l) in &layer {
        columns.entry(*l).or_default().push(s);
    }
    let mut pos: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (l, steps) in &columns {
        for (i, s) in steps.iter().enumerate() {
            pos.insert(s.as_str(), (10 + l * (W + GX), 10 + i * (H + GY)));
        }
    }
    let width = 20 + columns.len().max(1) * (W + GX);
    let height = 20 + columns.values().map(Vec::len).max().unwrap_or(1) * (H + GY);
    let mut out = format!(
        r#"<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    for (s, ns) in needs {
        let Some(&(x2, y2)) = pos.get(s.as_str()) else {
            continue;
        };
        for n in ns {
            if let Some(&(x1, y1)) = pos.get(n.as_str()) {
                let _ = write!(
                    out,
                    r##"<line class="edge" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#8c959f"/>"##,
                    x1 + W,
                    y1 + H / 2,
                    x2,
                    y2 + H / 2
                );
            }
        }
    }
    for (s, (x, y)) in &pos {
        let status = statuses.get(*s).map_or("pending", String::as_str);
        let label: String = s.chars().take(20).collect();
        let _ = write!(
            out,
            r##"<g class="node" data-step="{n}" data-status="{st}"><title>{n}: {st}</title><rect x="{x}" y="{y}" width="{W}" height="{H}" rx="6" fill="{c}"/><text x="{tx}" y="{ty}" fill="#fff" font-size="12">{l}</text></g>"##,
            n = esc(s),
            st = esc(status),
            c = status_colour(status),
            tx = x + 8,
            ty = y + H / 2 + 4,
            l = esc(&label)
        );
    }
    out.push_str("</svg>");
    out
}

const LINE_COLOURS: &[&str] = &[
    "#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#e16f24", "#6e7781",
];

/// A metric's trend: nights on x, score on y, one polyline (and dots) per model.
pub fn trend_svg(metric: &str, rows: &[&LeaderRow]) -> String {
    const W: f64 = 560.0;
    const H: f64 = 220.0;
    const PAD: f64 = 40.0;
    let nights: Vec<&str> = rows
        .iter()
        .map(|r| r.night.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (lo, hi) = rows.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
        (lo.min(r.value), hi.max(r.value))
    });
    let (lo, hi) = if (hi - lo).abs() < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let x = |night: &str| {
        let i = nights.iter().position(|n| *n == night).unwrap_or(0) as f64;
        PAD + i * (W - 2.0 * PAD) / ((nights.len().max(2) - 1) as f64)
    };
    let y = |v: f64| H - PAD - (v - lo) / (hi - lo) * (H - 2.0 * PAD);
    let mut by_model: BTreeMap<&str, Vec<&LeaderRow>> = BTreeMap::new();
    for r in rows {
        by_model.entry(r.model.as_str()).or_default().push(r);
    }
    let mut out = format!(
        r##"<svg class="trend" data-metric="{m}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}"><line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#8c959f"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="#8c959f"/><text x="4" y="{PAD}" font-size="10">{hi:.3}</text><text x="4" y="{b}" font-size="10">{lo:.3}</text>"##,
        m = esc(metric),
        b = H - PAD,
        r = W - PAD
    );
    for n in &nights {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            x(n),
            H - PAD + 14.0,
            esc(n)
        );
    }
    for (i, (model, mut rs)) in by_model.into_iter().enumerate() {
        rs.sort_by(|a, b| a.night.cmp(&b.night));
        let c = LINE_COLOURS[i % LINE_COLOURS.len()];
        let points: Vec<String> = rs
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(&r.night), y(r.value)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="series" data-model="{m}" fill="none" stroke="{c}" stroke-width="2" points="{p}"/>"#,
            m = esc(model),
            p = points.join(" ")
        );
        for r in &rs {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{}: {} on {}</title></circle>"#,
                x(&r.night),
                y(r.value),
                esc(model),
                r.value,
                esc(&r.night)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="11" fill="{c}">{}</text>"#,
            W - PAD - 120.0,
            14.0 + 12.0 * i as f64,
            esc(model)
        );
    }
    out.push_str("</svg>");
    out
}
