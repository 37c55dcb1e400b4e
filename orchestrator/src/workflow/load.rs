//! Loading a workflow file: YAML syntax (serde_yaml), the spanned tree (saphyr-parser), every
//! section read with its problems recorded, then the cross-step checks (see `links`). Returns
//! the validated [`Workflow`] or a [`LoadError`] with every problem of the file
//! (`crate::dag::load_file` seals it into the graph the engine runs).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use super::ctx::Ctx;
use super::diag::{Diag, LoadError};
use super::keys;
use super::links;
use super::model::Workflow;
use super::sections;
use super::step::{Defaults, read_defaults, read_step};
use super::yaml::{self, Kind, Node, Pos, Span};

/// Reads and validates the workflow file at `path`.
pub fn parse_file(path: &Path) -> Result<Workflow, LoadError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(path, &text),
        Err(e) => {
            let d = Diag::new("io", format!("cannot read {}: {e}", path.display()));
            Err(LoadError::new(path, "", vec![d]))
        }
    }
}

/// Validates a workflow from `text`, as if read from `path` (made absolute; its folder is the
/// project folder).
pub fn parse_str(path: &Path, text: &str) -> Result<Workflow, LoadError> {
    let mut ctx = Ctx::new(text);
    let workflow = parse(&mut ctx, path);
    match workflow {
        Some(w) if ctx.diags.is_empty() => Ok(w),
        _ => {
            if ctx.diags.is_empty() {
                ctx.diags
                    .push(Diag::new("invalid", "the workflow is invalid"));
            }
            Err(LoadError::new(path, text, ctx.diags))
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

const LIMIT_HELP: &str =
    "a workflow file is small and shallow: split it, or share values through `params`";

fn parse(ctx: &mut Ctx, path: &Path) -> Option<Workflow> {
    let text = ctx.src.text;
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let d = Diag::new("no_steps", "the workflow file is empty")
                .label("empty")
                .help("a workflow needs at least `name:` and `steps:`");
            ctx.push_at(d, (0, 0));
            return None;
        }
        Err(e) if e.limit => {
            // A limit (size, depth, aliases): reported as it is, never handed to another parser.
            let d = Diag::new("too_large", e.message)
                .label("limit reached here")
                .help(LIMIT_HELP);
            let off = ctx.src.offset(e.at);
            ctx.push_at(d, (off, 0));
            return None;
        }
        Err(_) if let Some(at) = yaml::flow_too_deep(text) => {
            let d = Diag::new(
                "too_large",
                format!(
                    "mappings and lists nest deeper than {} levels here",
                    yaml::MAX_DEPTH
                ),
            )
            .label("limit reached here")
            .help(LIMIT_HELP);
            ctx.push_at(d, (at, 0));
            return None;
        }
        Err(e) => {
            // libyaml (through serde_yaml) words most syntax errors better; it runs only here,
            // on a file already known to be broken, within the size limit and with few flow
            // collections (its cost grows with their depth). Errors without a place (a second
            // document) keep the event parser's.
            if yaml::libyaml_is_cheap(text)
                && let Err(e) =
                    serde::de::IgnoredAny::deserialize(serde_yaml::Deserializer::from_str(text))
                && e.location().is_some()
            {
                syntax_error(ctx, &e.to_string());
                return None;
            }
            let d = Diag::new("syntax", format!("YAML syntax error: {}", e.message)).label("here");
            let off = ctx.src.offset(e.at);
            ctx.push_at(d, (off, 0));
            return None;
        }
    };
    let top = ctx.map(&root, "the workflow", Some(keys::TOP))?;
    let name = match top.get("name") {
        Some(n) => workflow_name(ctx, n),
        None => {
            missing(
                ctx,
                &root,
                "name",
                "the workflow needs a `name`",
                "e.g. `name: my-pipeline` ([a-z0-9-]+)",
            );
            None
        }
    };
    let description = top
        .get("description")
        .and_then(|n| ctx.string(n, "`description`"))
        .map(str::to_string);
    let params = top
        .get("params")
        .map(|n| params(ctx, n))
        .unwrap_or_default();
    let schedule = top.get("schedule").and_then(|n| sections::schedule(ctx, n));
    let budget = top.get("budget").and_then(|n| sections::budget(ctx, n));
    let defaults = top
        .get("defaults")
        .map(|n| read_defaults(ctx, n))
        .unwrap_or_else(Defaults::default);
    let Some(steps_node) = top.get("steps") else {
        missing(
            ctx,
            &root,
            "steps",
            "the workflow has no `steps`",
            "add `steps:` with at least one step",
        );
        return None;
    };
    let steps_map = ctx.map(steps_node, "`steps`", None)?;
    if steps_map.entries.is_empty() {
        let d = Diag::new("no_steps", "the workflow has no steps")
            .label("no steps here")
            .help("add at least one step, e.g. `hello: { run: echo hello }`");
        let key = top.key("steps").map_or(steps_node.span, |k| k.span);
        ctx.push(d, key);
        return None;
    }
    let names: Vec<&str> = steps_map.entries.iter().map(|(name, _, _)| *name).collect();
    let tracking = top
        .get("tracking")
        .and_then(|n| sections::tracking(ctx, n, &steps_map));
    let secrets = top
        .get("secrets")
        .map(|n| super::secrets::section(ctx, n))
        .unwrap_or_default();
    let mut drafts: Vec<_> = steps_map
        .entries
        .iter()
        .map(|(name, key, node)| read_step(ctx, key, name, node, &params))
        .collect();
    for d in drafts.iter_mut().flatten() {
        let env_keys: Vec<&str> = d.env.keys().map(String::as_str).collect();
        let kept = super::secrets::check_step(ctx, d.name, &d.secrets, &secrets, &env_keys);
        d.secrets = d
            .secrets
            .drain(..)
            .filter(|(n, _)| kept.contains(n))
            .collect();
    }
    let leaderboard = top
        .get("leaderboard")
        .and_then(|n| super::leaderboard::leaderboard(ctx, n, &names, &params))
        .unwrap_or_default();
    let steps = links::link(ctx, &params, &defaults, &names, drafts)?;
    let path = absolute(path);
    let project_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Some(Workflow {
        name: name?,
        description,
        path,
        project_dir,
        params,
        schedule,
        budget,
        leaderboard,
        tracking,
        secrets,
        steps,
    })
}

/// A libyaml error, `PROBLEM at line L column C[, CONTEXT at line L column C]`, as a diagnostic:
/// at the problem, or where the context began when the problem is the end of the file (an
/// unclosed quote).
fn syntax_error(ctx: &mut Ctx, full: &str) {
    fn split_at_mark(s: &str) -> (&str, Option<Pos>) {
        let Some(i) = s.find(" at line ") else {
            return (s, None);
        };
        let mut nums = s[i + 9..]
            .split(" column ")
            .map(|n| n.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""));
        let line = nums.next().and_then(|n| n.parse().ok());
        let col = nums.next().and_then(|n| n.parse::<usize>().ok());
        let pos = line.zip(col).map(|(line, col)| Pos {
            line,
            col: col.saturating_sub(1),
        });
        (&s[..i], pos)
    }
    let (problem, at) = split_at_mark(full);
    let rest = full[problem.len()..].split_once(", ").map(|(_, r)| r);
    let (context, context_at) = rest.map_or(("", None), split_at_mark);
    let mut offset = at.map_or(0, |p| ctx.src.offset(p));
    let mut label = "here";
    if offset >= ctx.src.text.trim_end().len()
        && let Some(p) = context_at
    {
        offset = ctx.src.offset(p);
        label = "started here";
    }
    let message = if context.is_empty() {
        problem.to_string()
    } else {
        format!("{problem}, {context}")
    };
    let line = ctx.src.text[ctx.src.line_start(offset)..]
        .lines()
        .next()
        .unwrap_or("");
    let mut d = Diag::new("syntax", format!("YAML syntax error: {message}")).label(label);
    if line.contains("${{") && (line.contains('{') || line.contains('[')) {
        d = d.help(
            "inside `{ … }` or `[ … ]`, quote a value that holds `${{ … }}`: `\"${{ params.x }}\"`",
        );
    }
    ctx.push_at(d, (offset, 0));
}

fn missing(ctx: &mut Ctx, root: &Node, key: &str, message: &str, help: &str) {
    let d = Diag::new("missing_key", message)
        .label(format!("no `{key}` in this mapping"))
        .help(help);
    let start = root.span.start;
    ctx.push(d, Span { start, end: start });
}

fn workflow_name(ctx: &mut Ctx, node: &Node) -> Option<String> {
    let name = ctx.string(node, "`name`")?;
    if super::names::valid_workflow(name) {
        return Some(name.to_string());
    }
    if super::names::too_long(name) {
        let max = super::names::MAX_NAME_LEN;
        let d = Diag::new(
            "invalid_name",
            super::names::problem("workflow", name, "[a-z0-9-]+"),
        )
        .label(format!("more than {max} characters"))
        .help(format!(
            "use a shorter name: workflow (and schedule) names are at most {max} characters"
        ));
        ctx.push(d, node.span);
        return None;
    }
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let help = if slug.is_empty() {
        "use lower-case letters, digits and `-`".to_string()
    } else {
        format!("use lower-case letters, digits and `-`, e.g. `{slug}`")
    };
    let d = Diag::new("invalid_name", format!("invalid workflow name `{name}`"))
        .label("not [a-z0-9-]+")
        .help(help);
    ctx.push(d, node.span);
    None
}

fn params(ctx: &mut Ctx, node: &Node) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let Some(f) = ctx.map(node, "`params`", None) else {
        return out;
    };
    let mut vars: Vec<(String, &str)> = Vec::new();
    for (name, key, value) in f.entries {
        if !super::step::is_step_name(name) {
            let d = Diag::new("invalid_name", format!("invalid parameter name `{name}`"))
                .label(super::names::label(name, "not a valid name"))
                .help("parameter names may use letters, digits, `_` and `-`");
            ctx.push(d, key.span);
            continue;
        }
        let var = super::template::param_env_name(name);
        if let Some((_, other)) = vars.iter().find(|(v, _)| *v == var) {
            let d = Diag::new(
                "duplicate_key",
                format!("parameters `{other}` and `{name}` would both reach steps as `{var}`"),
            )
            .label("same environment variable")
            .help("rename one: parameter names are upper-cased and `-` becomes `_` in `TUNA_PARAM_<NAME>`");
            ctx.push(d, key.span);
        }
        vars.push((var, name));
        match &value.kind {
            Kind::Scalar(s) if !s.is_null() => {
                out.insert(name.to_string(), s.value.clone());
            }
            Kind::Scalar(_) => {
                let d = Diag::new(
                    "wrong_type",
                    format!("parameter `{name}` has no default value"),
                )
                .label("no value")
                .help(format!(
                    "give a default, e.g. `{name}: \"\"` for an empty string"
                ));
                ctx.push(d, value.span);
            }
            _ => ctx.wrong_type(
                value,
                &format!("parameter `{name}`"),
                "a single value (string or number)",
            ),
        }
        // Declared, even when its value is wrong: references to it are not errors too.
        out.entry(name.to_string()).or_default();
    }
    out
}
