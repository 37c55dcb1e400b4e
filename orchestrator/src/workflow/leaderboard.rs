//! The `leaderboard:` section: which step's metrics become leaderboard entries, under which
//! model name (a template over params) and suite.

use indexmap::IndexMap;

use super::ctx::{Ctx, PlacedRef};
use super::diag::Diag;
use super::keys;
use super::model::Leaderboard;
use super::suggest::help_for;
use super::template::Ref;
use super::yaml::Node;

/// Reads `leaderboard: { step, model, metrics, suite? }`; `steps` are the workflow's step names.
pub(crate) fn leaderboard(
    ctx: &mut Ctx,
    node: &Node,
    steps: &[&str],
    params: &IndexMap<String, String>,
) -> Option<Leaderboard> {
    let f = ctx.map(node, "`leaderboard`", Some(keys::LEADERBOARD))?;
    let mut ok = true;
    let step = match f.get("step") {
        Some(n) => {
            let s = ctx.string(n, "`leaderboard.step`");
            if let Some(s) = s
                && !steps.contains(&s)
            {
                let d = Diag::new(
                    "unknown_step",
                    format!("`leaderboard.step` names `{s}`, which is not a step"),
                )
                .label("no such step")
                .help(
                    help_for(s, steps.iter().copied())
                        .unwrap_or_else(|| format!("steps: {}", steps.join(", "))),
                );
                ctx.push(d, n.span);
                ok = false;
            }
            s.map(str::to_string)
        }
        None => {
            missing(ctx, node, "step", "e.g. `step: eval`");
            None
        }
    };
    let model = match f.get("model") {
        Some(n) => {
            let mut refs: Vec<PlacedRef> = Vec::new();
            let t = ctx.template(n, "`leaderboard.model`", &mut refs);
            for (r, range) in refs {
                let bad = match &r {
                    Ref::Param(p) if params.contains_key(p) => None,
                    Ref::Param(p) => Some(format!("param `{p}` is not declared in `params`")),
                    _ => Some("`leaderboard.model` may only use `${{ params.NAME }}`".to_string()),
                };
                if let Some(message) = bad {
                    ctx.push_at(
                        Diag::new("leaderboard_model", message)
                            .label("here")
                            .help("name the model with params, e.g. `${{ params.model_name }}`"),
                        range,
                    );
                    ok = false;
                }
            }
            t
        }
        None => {
            missing(
                ctx,
                node,
                "model",
                "e.g. `model: \"${{ params.model_name }}\"`",
            );
            None
        }
    };
    let metrics = match f.get("metrics") {
        Some(n) => {
            let items = ctx.strings(n, "`leaderboard.metrics`");
            if items.as_ref().is_some_and(Vec::is_empty) {
                ctx.push(
                    Diag::new("leaderboard_metrics", "`leaderboard.metrics` is empty")
                        .label("no metrics")
                        .help("list the metric names the step writes, e.g. `[mmlu_em]`"),
                    n.span,
                );
                ok = false;
            }
            items.map(|v| {
                v.into_iter()
                    .map(|(s, _)| s.to_string())
                    .collect::<Vec<_>>()
            })
        }
        None => {
            missing(
                ctx,
                node,
                "metrics",
                "e.g. `metrics: [mmlu_em, truthfulqa_acc]`",
            );
            None
        }
    };
    let suite = match f.get("suite") {
        Some(n) => {
            let s = ctx.string(n, "`leaderboard.suite`").map(str::to_string);
            ok &= s.is_some();
            s
        }
        None => None,
    };
    let (step, model, metrics) = (step?, model?, metrics?);
    ok.then_some(Leaderboard {
        step,
        model,
        metrics,
        suite,
    })
}

fn missing(ctx: &mut Ctx, node: &Node, key: &str, example: &str) {
    let d = Diag::new("missing_key", format!("`leaderboard` needs `{key}`"))
        .label(format!("no `{key}` here"))
        .help(example.to_string());
    ctx.push(d, node.span);
}
