//! The `leaderboard:` section: which steps' metrics become leaderboard entries, under which
//! model name (a template over params) and suite. One mapping, or a list of them (one entry per
//! model checkpoint an evaluation step scores).

use indexmap::IndexMap;

use super::ctx::{Ctx, PlacedRef};
use super::diag::Diag;
use super::keys;
use super::model::Leaderboard;
use super::suggest::help_for;
use super::template::Ref;
use super::yaml::{Kind, Node, Span};

/// An entry read cleanly, with the places duplicate checks point at.
struct Read {
    entry: Leaderboard,
    step_span: Span,
    metric_spans: Vec<Span>,
}

/// Reads `leaderboard: { step, model, metrics, suite? }` or a non-empty list of such mappings;
/// `steps` are the workflow's step names. `None` after reporting a problem.
pub(crate) fn leaderboard(
    ctx: &mut Ctx,
    node: &Node,
    steps: &[&str],
    params: &IndexMap<String, String>,
) -> Option<Vec<Leaderboard>> {
    let Kind::Seq(items) = &node.kind else {
        if !matches!(node.kind, Kind::Map(_)) {
            ctx.wrong_type(node, "`leaderboard`", "a mapping or a list of mappings");
            return None;
        }
        return entry(ctx, node, "`leaderboard`", steps, params).map(|r| vec![r.entry]);
    };
    if items.is_empty() {
        let d = Diag::new("leaderboard_empty", "`leaderboard` is an empty list")
            .label("no entries")
            .help("list one `{ step, model, metrics }` entry per evaluated model, or drop the key");
        ctx.push(d, node.span);
        return None;
    }
    let mut read = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match entry(ctx, item, &format!("`leaderboard[{i}]`"), steps, params) {
            Some(r) => read.push((i, r)),
            None => ok = false,
        }
    }
    ok &= no_duplicates(ctx, &read);
    ok.then(|| read.into_iter().map(|(_, r)| r.entry).collect())
}

/// Two entries may not name the same step and model, nor both write the same metric of the same
/// model in the same suite (their rows would overwrite each other). Whether all were unique.
fn no_duplicates(ctx: &mut Ctx, read: &[(usize, Read)]) -> bool {
    let mut ok = true;
    for (n, (i, r)) in read.iter().enumerate() {
        let e = &r.entry;
        for (j, earlier) in read[..n].iter().map(|(j, r)| (j, &r.entry)) {
            if earlier.model.source != e.model.source {
                continue;
            }
            if earlier.step == e.step {
                let d = Diag::new(
                    "leaderboard_duplicate",
                    format!(
                        "`leaderboard[{i}]` repeats step `{}` with model `{}` from `leaderboard[{j}]`",
                        e.step, e.model.source
                    ),
                )
                .label("same step and model again")
                .help("merge the two entries' `metrics` into one entry");
                ctx.push(d, r.step_span);
                ok = false;
                break;
            }
            if earlier.suite != e.suite {
                continue;
            }
            if let Some((m, span)) = e
                .metrics
                .iter()
                .zip(&r.metric_spans)
                .find(|(m, _)| earlier.metrics.contains(m))
            {
                let d = Diag::new(
                    "leaderboard_duplicate",
                    format!(
                        "`leaderboard[{i}]` and `leaderboard[{j}]` both record `{m}` for model `{}` in the same suite",
                        e.model.source
                    ),
                )
                .label("recorded twice")
                .help("give each entry its own model name or `suite`, or drop the metric from one");
                ctx.push(d, *span);
                ok = false;
                break;
            }
        }
    }
    ok
}

/// One `{ step, model, metrics, suite? }` mapping; `what` names it in messages.
fn entry(
    ctx: &mut Ctx,
    node: &Node,
    what: &str,
    steps: &[&str],
    params: &IndexMap<String, String>,
) -> Option<Read> {
    let f = ctx.map(node, what, Some(keys::LEADERBOARD))?;
    let field = |key: &str| format!("{}.{key}`", what.trim_end_matches('`'));
    let mut ok = true;
    let step = match f.get("step") {
        Some(n) => {
            let s = ctx.string(n, &field("step"));
            if let Some(s) = s
                && !steps.contains(&s)
            {
                let d = Diag::new(
                    "unknown_step",
                    format!("{} names `{s}`, which is not a step", field("step")),
                )
                .label("no such step")
                .help(
                    help_for(s, steps.iter().copied())
                        .unwrap_or_else(|| format!("steps: {}", steps.join(", "))),
                );
                ctx.push(d, n.span);
                ok = false;
            }
            s.map(|s| (s.to_string(), n.span))
        }
        None => {
            missing(ctx, node, what, "step", "e.g. `step: eval`");
            None
        }
    };
    let model = match f.get("model") {
        Some(n) => {
            let mut refs: Vec<PlacedRef> = Vec::new();
            let t = ctx.template(n, &field("model"), &mut refs);
            for (r, range) in refs {
                let example = "name the model with params, e.g. `${{ params.model_name }}`";
                let bad = match &r {
                    Ref::Param(p) if params.contains_key(p) => None,
                    Ref::Param(p) => Some((
                        format!("param `{p}` is not declared in `params`"),
                        help_for(p, params.keys().map(String::as_str))
                            .unwrap_or_else(|| example.to_string()),
                    )),
                    _ => Some((
                        format!("{} may only use `${{{{ params.NAME }}}}`", field("model")),
                        example.to_string(),
                    )),
                };
                if let Some((message, help)) = bad {
                    let d = Diag::new("leaderboard_model", message)
                        .label("here")
                        .help(help);
                    ctx.push_at(d, range);
                    ok = false;
                }
            }
            t
        }
        None => {
            let example = "e.g. `model: \"${{ params.model_name }}\"`";
            missing(ctx, node, what, "model", example);
            None
        }
    };
    let metrics = match f.get("metrics") {
        Some(n) => {
            let items = ctx.strings(n, &field("metrics"));
            if items.as_ref().is_some_and(Vec::is_empty) {
                ctx.push(
                    Diag::new(
                        "leaderboard_metrics",
                        format!("{} is empty", field("metrics")),
                    )
                    .label("no metrics")
                    .help("list the metric names the step writes, e.g. `[mmlu_em]`"),
                    n.span,
                );
                ok = false;
            }
            items
        }
        None => {
            let example = "e.g. `metrics: [mmlu_em, truthfulqa_acc]`";
            missing(ctx, node, what, "metrics", example);
            None
        }
    };
    let suite = match f.get("suite") {
        Some(n) => {
            let s = ctx.string(n, &field("suite")).map(str::to_string);
            ok &= s.is_some();
            s
        }
        None => None,
    };
    let ((step, step_span), model, metrics) = (step?, model?, metrics?);
    let metric_spans = metrics.iter().map(|(_, n)| n.span).collect();
    ok.then(|| Read {
        entry: Leaderboard {
            step,
            model,
            metrics: metrics.into_iter().map(|(s, _)| s.to_string()).collect(),
            suite,
        },
        step_span,
        metric_spans,
    })
}

fn missing(ctx: &mut Ctx, node: &Node, what: &str, key: &str, example: &str) {
    let d = Diag::new("missing_key", format!("{what} needs `{key}`"))
        .label(format!("no `{key}` here"))
        .help(example.to_string());
    ctx.push(d, node.span);
}
