//! The checks that span steps: `needs` naming real steps, references to params and to declared
//! outputs of other steps (which imply `needs`), cycles (with their path), and `defaults:`
//! merged into each step. Produces the steps of the validated [`Workflow`](super::Workflow).

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::ctx::{Ctx, PlacedRef};
use super::cycles::find_cycles;
use super::diag::Diag;
use super::model::Step;
use super::step::{Defaults, Draft};
use super::suggest::help_for;
use super::template::Ref;

/// Whether a reference to output `want` names one of `outputs` (a declared folder `adapter/` is
/// named `adapter` or `adapter/`, and paths inside it count too).
pub(crate) fn declares(outputs: &[String], want: &str) -> bool {
    outputs.iter().any(|o| {
        o == want
            || o.strip_suffix('/').is_some_and(|dir| {
                want == dir || want.strip_prefix(o.as_str()).is_some_and(|r| !r.is_empty())
            })
    })
}

pub(crate) fn link(
    ctx: &mut Ctx,
    params: &IndexMap<String, String>,
    defaults: &Defaults,
    all: &[&str],
    drafts: Vec<Option<Draft>>,
) -> Option<IndexMap<String, Step>> {
    let index: HashMap<&str, usize> = all.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let names = || all.iter().copied();
    // Edges: (step, need, place in the file).
    let mut edges: Vec<Vec<(usize, (usize, usize))>> = vec![Vec::new(); drafts.len()];
    check_refs(ctx, params, &defaults.refs, None, &drafts, all, &index);
    for (i, d) in drafts.iter().enumerate() {
        let Some(d) = d else { continue };
        for (need, span) in &d.needs {
            match index.get(need) {
                Some(&j) if j == i => {
                    let diag = Diag::new("self_need", format!("step `{need}` needs itself"))
                        .label("a step cannot wait for itself")
                        .help("remove it from `needs`");
                    ctx.push(diag, *span);
                }
                Some(&j) => edges[i].push((j, ctx.src.range(*span))),
                None => {
                    let help = help_for(need, names())
                        .unwrap_or_else(|| "`needs` lists names of steps in this file".into());
                    let diag = Diag::new(
                        "unknown_need",
                        format!("step `{}` needs `{need}`, which is not a step", d.name),
                    )
                    .label("no such step")
                    .help(help);
                    ctx.push(diag, *span);
                }
            }
        }
        for (j, place) in check_refs(ctx, params, &d.refs, Some(i), &drafts, all, &index) {
            edges[i].push((j, place));
        }
    }
    report_cycles(ctx, all, &edges);
    if drafts.iter().any(Option::is_none) || !ctx.diags.is_empty() {
        return None;
    }
    let mut steps = IndexMap::with_capacity(drafts.len());
    for (d, e) in drafts.into_iter().flatten().zip(edges) {
        let mut seen = HashSet::new();
        let needs = e
            .iter()
            .filter(|(j, _)| seen.insert(*j))
            .map(|(j, _)| all[*j].to_string())
            .collect();
        let step = merge(d, defaults, needs)?;
        steps.insert(step.name.clone(), step);
    }
    Some(steps)
}

/// Checks references; returns the steps they imply (with places). `owner` is None for
/// `defaults:`, where step outputs are not allowed.
fn check_refs(
    ctx: &mut Ctx,
    params: &IndexMap<String, String>,
    refs: &[PlacedRef],
    owner: Option<usize>,
    drafts: &[Option<Draft>],
    all: &[&str],
    index: &HashMap<&str, usize>,
) -> Vec<(usize, (usize, usize))> {
    let mut implied = Vec::new();
    for (r, place) in refs {
        match r {
            Ref::Param(p) if !params.contains_key(p) => {
                let help = help_for(p, params.keys().map(String::as_str)).unwrap_or_else(|| {
                    format!("declare it under `params:` with a default, e.g. `{p}: …`")
                });
                let d = Diag::new("unknown_param", format!("undefined parameter `{p}`"))
                    .label("not in `params`")
                    .help(help);
                ctx.push_at(d, *place);
            }
            Ref::StepOutput { step, output } => {
                let Some(owner) = owner else {
                    let d = Diag::new(
                        "unknown_step_ref",
                        "`defaults` cannot refer to step outputs",
                    )
                    .label("step output in `defaults`")
                    .help("move this value into the steps that need it");
                    ctx.push_at(d, *place);
                    continue;
                };
                match index.get(step.as_str()) {
                    None => {
                        let names = all.iter().copied();
                        let help = help_for(step, names)
                            .unwrap_or_else(|| "name a step of this file".into());
                        let d = Diag::new(
                            "unknown_step_ref",
                            format!("reference to unknown step `{step}`"),
                        )
                        .label("no such step")
                        .help(help);
                        ctx.push_at(d, *place);
                    }
                    Some(&j) if j == owner => {
                        let d = Diag::new("self_need", format!("step `{step}` refers to its own output `{output}`"))
                            .label("own output")
                            .help("a step's outputs exist only after it ran; use a relative path inside the step instead");
                        ctx.push_at(d, *place);
                    }
                    Some(&j) => {
                        let Some(target) = &drafts[j] else { continue };
                        if declares(&target.outputs, output) {
                            implied.push((j, *place));
                            continue;
                        }
                        let declared = target
                            .outputs
                            .iter()
                            .map(|o| format!("`{o}`"))
                            .collect::<Vec<_>>();
                        let help = help_for(output, target.outputs.iter().map(String::as_str)).unwrap_or_else(|| {
                            if declared.is_empty() {
                                format!("step `{step}` declares no outputs; add `outputs: [{output}]` to it")
                            } else {
                                format!("step `{step}` declares {}", declared.join(", "))
                            }
                        });
                        let d = Diag::new(
                            "unknown_output",
                            format!("step `{step}` declares no output `{output}`"),
                        )
                        .label("undeclared output")
                        .help(help);
                        ctx.push_at(d, *place);
                    }
                }
            }
            _ => {}
        }
    }
    implied
}

fn report_cycles(ctx: &mut Ctx, all: &[&str], edges: &[Vec<(usize, (usize, usize))>]) {
    let needs: Vec<Vec<usize>> = edges
        .iter()
        .map(|e| e.iter().map(|(j, _)| *j).collect())
        .collect();
    for cycle in find_cycles(&needs) {
        let name = |i: usize| all[i];
        let mut path: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
        path.push(name(cycle[0]));
        let last = *cycle.last().unwrap_or(&cycle[0]);
        let place = edges[last]
            .iter()
            .find(|(j, _)| *j == cycle[0])
            .map(|(_, p)| *p)
            .unwrap_or((0, 0));
        let d = Diag::new("cycle", format!("steps depend on each other in a cycle: {}", path.join(" → ")))
            .label(format!("`{}` needs `{}`, closing the cycle", name(last), name(cycle[0])))
            .help("each step in the path needs the next; remove one of these `needs` (or references) to break the cycle");
        ctx.push_at(d, place);
    }
}

/// A step with `defaults:` applied where it sets nothing of its own.
fn merge(d: Draft, defaults: &Defaults, needs: Vec<String>) -> Option<Step> {
    let mut env = defaults.env.clone();
    env.extend(d.env);
    Some(Step {
        name: d.name.to_string(),
        needs,
        action: d.action?,
        inputs: d.inputs,
        env,
        runs_on: d
            .runs_on
            .or_else(|| defaults.runs_on.clone())
            .unwrap_or_default(),
        retry: d
            .retry
            .or_else(|| defaults.retry.clone())
            .unwrap_or_default(),
        timeout: d.timeout.or(defaults.timeout),
        cache: d.cache,
        outputs: d.outputs,
        gate: d.gate,
        wait_for_capacity: d.wait_for_capacity.or(defaults.wait_for_capacity),
        secrets: d.secrets.into_iter().map(|(n, _)| n).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_references_match_declarations() {
        let outs = vec!["train.jsonl".to_string(), "adapter/".to_string()];
        assert!(declares(&outs, "train.jsonl"));
        assert!(declares(&outs, "adapter"));
        assert!(declares(&outs, "adapter/"));
        assert!(declares(&outs, "adapter/config.json"));
        assert!(!declares(&outs, "train"));
        assert!(!declares(&outs, "adapterx"));
    }
}
