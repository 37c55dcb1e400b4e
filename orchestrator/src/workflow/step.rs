//! Reading one step (and the `defaults:` section, which shares its keys) into a draft that
//! keeps the spans the cross-step checks need: explicit `needs` and every `${{ … }}` reference.

use std::collections::BTreeMap;
use std::time::Duration;

use indexmap::IndexMap;

use super::ctx::{Ctx, PlacedRef};
use super::diag::Diag;
use super::gate::parse_gate;
use super::keys;
use super::model::{Action, CachePolicy, Gate, Retry, RunsOn};
use super::sections;
use super::suggest::help_for;
use super::template::{Part, Ref, Template, param_env_name};
use super::with_value::{preview_with, with_path};
use super::yaml::{Kind, Node, Span};

/// A step as read, before defaults and cross-step checks.
pub(crate) struct Draft<'n> {
    pub name: &'n str,
    pub needs: Vec<(&'n str, Span)>,
    pub refs: Vec<PlacedRef>,
    pub action: Option<Action>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub env: BTreeMap<String, Template>,
    pub runs_on: Option<Vec<RunsOn>>,
    pub retry: Option<Retry>,
    pub timeout: Option<Duration>,
    pub wait_for_capacity: Option<Duration>,
    pub cache: CachePolicy,
    pub gate: Vec<Gate>,
    /// `secrets:` as written, with their places (checked against the section in `load.rs`).
    pub secrets: Vec<(String, Span)>,
}

/// The `defaults:` section.
#[derive(Default)]
pub(crate) struct Defaults {
    pub retry: Option<Retry>,
    pub timeout: Option<Duration>,
    pub wait_for_capacity: Option<Duration>,
    pub runs_on: Option<Vec<RunsOn>>,
    pub env: BTreeMap<String, Template>,
    pub refs: Vec<PlacedRef>,
}

pub(crate) fn is_step_name(s: &str) -> bool {
    super::names::valid_step(s)
}

pub(crate) fn read_step<'n>(
    ctx: &mut Ctx,
    key: &'n Node,
    name: &'n str,
    node: &'n Node,
    params: &IndexMap<String, String>,
) -> Option<Draft<'n>> {
    if !is_step_name(name) {
        let d = Diag::new("invalid_step_name", format!("invalid step name `{name}`"))
            .label(super::names::label(name, "not a valid step name"))
            .help("step names may use letters, digits, `_` and `-`");
        ctx.push(d, key.span);
    }
    let what = format!("step `{name}`");
    if node.is_null() {
        let d = Diag::new("no_action", format!("step `{name}` is empty"))
            .label("nothing to do")
            .help("give the step a shell command with `run:` or a built-in kind with `uses:`");
        ctx.push(d, key.span);
        return None;
    }
    let f = ctx.map(node, &what, Some(keys::STEP))?;
    let mut d = Draft {
        name,
        needs: Vec::new(),
        refs: Vec::new(),
        action: None,
        inputs: Vec::new(),
        outputs: Vec::new(),
        env: BTreeMap::new(),
        runs_on: None,
        retry: None,
        timeout: None,
        wait_for_capacity: None,
        cache: CachePolicy::default(),
        gate: Vec::new(),
        secrets: Vec::new(),
    };
    if let Some(n) = f.get("secrets") {
        for (s, item) in ctx.strings(n, "`secrets`").unwrap_or_default() {
            d.secrets.push((s.to_string(), item.span));
        }
    }
    if let Some(n) = f.get("needs") {
        for (need, item) in ctx
            .strings(n, &format!("`needs` of step `{name}`"))
            .unwrap_or_default()
        {
            d.needs.push((need, item.span));
        }
    }
    d.action = action(ctx, &f, name, node, &mut d.refs, params);
    if let Some(n) = f.get("inputs") {
        d.inputs = paths(ctx, n, "`inputs`");
    }
    if let Some(n) = f.get("outputs") {
        d.outputs = paths(ctx, n, "`outputs`");
    } else if let Some(k) = f
        .get("uses")
        .and_then(|n| n.as_str())
        .and_then(tuna_steps::find)
    {
        // A built-in kind names its own outputs unless the step lists them (also when its
        // `with` has problems, so that they are not reported twice).
        let with = f.get("with").map_or(
            serde_yaml::Value::Mapping(Default::default()),
            Node::to_value,
        );
        d.outputs = k.default_outputs(&preview(&with, params));
    }
    if let Some(n) = f.get("env") {
        d.env = env(ctx, n, &mut d.refs);
    }
    d.runs_on = f.get("runs-on").and_then(|n| sections::runs_on(ctx, n));
    d.retry = f.get("retry").and_then(|n| sections::retry(ctx, n));
    d.timeout = f
        .get("timeout")
        .and_then(|n| positive_duration(ctx, n, "`timeout`"));
    d.wait_for_capacity = f
        .get("wait_for_capacity")
        .and_then(|n| ctx.duration(n, "`wait_for_capacity`"));
    if let Some(n) = f.get("cache") {
        d.cache = sections::cache(ctx, n).unwrap_or_default();
    }
    if let Some(Action::Uses { kind, .. }) = &d.action
        && tuna_steps::find(kind).is_some_and(|k| k.is_service())
    {
        // What a service step started is gone after its run: never a cache hit.
        d.cache.enabled = false;
    }
    if let Some(n) = f.get("gate") {
        for (text, item) in ctx.strings(n, "`gate`").unwrap_or_default() {
            match parse_gate(text) {
                Ok(g) => d.gate.push(g),
                Err((message, help)) => {
                    let diag = Diag::new("gate", message).label("invalid gate").help(help);
                    ctx.push(diag, item.span);
                }
            }
        }
    }
    Some(d)
}

/// A `with:` mapping as a kind checks it at load time: params at their defaults (typed),
/// step outputs as placeholder paths.
fn preview(with: &serde_yaml::Value, params: &IndexMap<String, String>) -> serde_json::Value {
    preview_with(with, &|p| params.get(p).cloned())
}

/// Whether a `with` value is a lone `${{ params.X }}` of a param whose default is empty.
fn uses_empty_param(with: &serde_yaml::Value, params: &IndexMap<String, String>) -> bool {
    match with {
        serde_yaml::Value::String(s) => Template::parse(s).is_ok_and(|t| {
            matches!(t.parts.as_slice(), [Part::Ref(Ref::Param(p))]
                if params.get(p).is_some_and(String::is_empty))
        }),
        serde_yaml::Value::Sequence(items) => items.iter().any(|i| uses_empty_param(i, params)),
        serde_yaml::Value::Mapping(m) => m.values().any(|v| uses_empty_param(v, params)),
        _ => false,
    }
}

fn action(
    ctx: &mut Ctx,
    f: &super::ctx::Fields,
    name: &str,
    node: &Node,
    refs: &mut Vec<PlacedRef>,
    params: &IndexMap<String, String>,
) -> Option<Action> {
    match (f.key("run"), f.key("uses")) {
        (Some(run), Some(uses)) => {
            let second = if run.span.start.line > uses.span.start.line {
                run
            } else {
                uses
            };
            let d = Diag::new("run_and_uses", format!("step `{name}` has both `run` and `uses`"))
                .label("second action")
                .help("a step either runs a shell command (`run:`) or a built-in kind (`uses:`); split it into two steps");
            ctx.push(d, second.span);
            return None;
        }
        (None, None) => {
            let d = Diag::new(
                "no_action",
                format!("step `{name}` has neither `run` nor `uses`"),
            )
            .label("nothing to do")
            .help("give the step a shell command with `run:` or a built-in kind with `uses:`");
            ctx.push(d, node.span);
            return None;
        }
        _ => {}
    }
    if let Some(n) = f.get("run") {
        if let Some(k) = f.key("with") {
            let d = Diag::new(
                "unknown_key",
                format!("`with` in step `{name}` is for `uses:` steps"),
            )
            .label("not used by `run:`")
            .help("pass values to a shell command inside `run:` with `${{ params.NAME }}`");
            ctx.push(d, k.span);
        }
        let before = refs.len();
        let t = ctx.template(n, "`run`", refs)?;
        check_script(ctx, &t, &refs[before..]);
        if t.source.trim().is_empty() {
            ctx.push(
                Diag::new("no_action", "`run` is an empty command").label("empty"),
                n.span,
            );
            return None;
        }
        return Some(Action::Run(t));
    }
    let uses = f.get("uses")?;
    let kind = ctx.string(uses, "`uses`")?;
    let with = f.get("with");
    if let Some(w) = with {
        if !matches!(w.kind, Kind::Map(_)) {
            ctx.wrong_type(w, "`with`", "a mapping");
            return None;
        }
        with_templates(ctx, w, refs);
    }
    let value = with.map_or(
        serde_yaml::Value::Mapping(Default::default()),
        Node::to_value,
    );
    let Some(k) = tuna_steps::find(kind) else {
        let names: Vec<&str> = tuna_steps::all().iter().map(|k| k.name()).collect();
        let help = help_for(kind, names.iter().copied()).unwrap_or_else(|| {
            if names.is_empty() {
                "this build of tuna has no built-in step kinds; use `run:` for a shell command"
                    .into()
            } else {
                format!("built-in kinds: {}", names.join(", "))
            }
        });
        let d = Diag::new("unknown_kind", format!("unknown step kind `{kind}`"))
            .label("not a built-in kind")
            .help(help);
        ctx.push(d, uses.span);
        return None;
    };
    // A value taken from a param without a default is checked when a run gives it
    // (`engine::merged_params`), not here.
    let problems = if uses_empty_param(&value, params) {
        Vec::new()
    } else {
        k.check_with(&preview(&value, params))
    };
    for p in &problems {
        let at = with.map_or(uses, |w| locate(w, &p.path));
        let d = Diag::new("with", format!("{} for `{kind}`: {}", p.key(), p.message)).label("here");
        ctx.push(d, at.span);
    }
    let escapes = with.map_or(0, |w| with_paths_inside(ctx, w, k.path_keys(), params));
    (problems.is_empty() && escapes == 0).then(|| Action::Uses {
        kind: kind.to_string(),
        with: value,
    })
}

/// The `with` values that name project files (the kind's path keys): a relative path stays
/// inside the project folder, as `inputs:` do; an absolute path is allowed and explicit. A
/// value built from params is checked with their defaults here and with a run's values when
/// the run starts (`engine::Engine::create_run`). How many were refused.
fn with_paths_inside(
    ctx: &mut Ctx,
    with: &Node,
    keys: &[&str],
    params: &IndexMap<String, String>,
) -> usize {
    let Kind::Map(pairs) = &with.kind else {
        return 0;
    };
    let mut refused = 0;
    for (key, node) in pairs {
        let Some(key) = key.as_str().filter(|k| keys.contains(k)) else {
            continue;
        };
        let Kind::Scalar(s) = &node.kind else {
            continue;
        };
        let Some(path) = with_path(&s.value, &|p| params.get(p).cloned()) else {
            continue;
        };
        if let Some(problem) = relative_path_escapes(&path) {
            refused += 1;
            let d = Diag::new("path", format!("`with.{key}` `{path}` {problem}"))
                .label("leaves the project")
                .help(
                    "a relative path names a file inside the project folder; \
                     write an absolute path (`/data/train.jsonl`) to read one elsewhere",
                );
            ctx.push(d, node.span);
        }
    }
    refused
}

/// Why a relative path would leave the folder it is relative to (a `..` component); `None`
/// for a path that stays inside, and for an absolute path.
pub(crate) fn relative_path_escapes(path: &str) -> Option<&'static str> {
    let p = std::path::Path::new(path);
    if p.is_absolute() {
        return None;
    }
    p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        .then_some("must stay inside the project folder (no `..`)")
}

/// The node at a dotted path inside `with:` (`lora.r`, `targets.0`), else the deepest found.
fn locate<'n>(mut node: &'n Node, path: &str) -> &'n Node {
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let next = match &node.kind {
            Kind::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(seg))
                .map(|(_, v)| v),
            Kind::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            Kind::Scalar(_) => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node
}

/// Checks every string leaf of `with:` for malformed references and collects the references.
fn with_templates(ctx: &mut Ctx, node: &Node, refs: &mut Vec<PlacedRef>) {
    match &node.kind {
        Kind::Scalar(s) if s.value.contains("${{") => {
            ctx.template(node, "a `with` value", refs);
        }
        Kind::Scalar(_) => {}
        Kind::Seq(items) => items.iter().for_each(|i| with_templates(ctx, i, refs)),
        Kind::Map(pairs) => pairs.iter().for_each(|(_, v)| with_templates(ctx, v, refs)),
    }
}

fn positive_duration(ctx: &mut Ctx, node: &Node, what: &str) -> Option<Duration> {
    let d = ctx.duration(node, what)?;
    if d.is_zero() {
        let diag = Diag::new("duration", format!("{what} must be longer than zero"))
            .label("zero")
            .help("leave it out for no limit");
        ctx.push(diag, node.span);
        return None;
    }
    Some(d)
}

/// `inputs` / `outputs`: relative paths that stay inside their folder.
fn paths(ctx: &mut Ctx, node: &Node, what: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (p, item) in ctx.strings(node, what).unwrap_or_default() {
        let problem = if p.contains("${{") {
            Some("holds a reference, but paths are literal")
        } else if p.starts_with('/') || p.starts_with('~') {
            Some("must be a relative path")
        } else if p.split('/').any(|c| c == "..") {
            Some("must stay inside its folder (no `..`)")
        } else if p.split('/').all(|c| c.is_empty() || c == ".") {
            Some("must name a file or folder")
        } else {
            None
        };
        let base = if what == "`outputs`" {
            "the step's work folder"
        } else {
            "the project folder"
        };
        if let Some(problem) = problem {
            let d = Diag::new("path", format!("{what} entry `{p}` {problem}"))
                .label("invalid path")
                .help(format!(
                    "paths in {what} are relative to {base}, e.g. `data/train.jsonl` or `adapter/`"
                ));
            ctx.push(d, item.span);
        } else if out.iter().any(|o| o == p) {
            let d = Diag::new("duplicate_key", format!("{what} lists `{p}` twice"))
                .label("listed again");
            ctx.push(d, item.span);
        } else {
            out.push(p.to_string());
        }
    }
    out
}

/// Refuses each reference of a `run:` script that bash would not read as one literal word
/// where it stands (`shell_lex`), at its place (`placed`: the template's references as the
/// loader found them), with the safe way to write it.
fn check_script(ctx: &mut Ctx, t: &Template, placed: &[PlacedRef]) {
    let Ok((_, spans)) = Template::parse_spanned(&t.source) else {
        return;
    };
    let places = super::shell_lex::places(t);
    for ((place, (r, range)), (a, len)) in places.into_iter().zip(placed).zip(spans) {
        let Err(why) = place else {
            continue;
        };
        let var = match r {
            Ref::Param(p) => Some(param_env_name(p)),
            Ref::RunId => Some("TUNA_RUN_ID".to_string()),
            _ => None,
        };
        let snippet = &t.source[a..a + len];
        let d = Diag::new(
            "unquotable_reference",
            format!(
                "`{snippet}` cannot be quoted where it stands: {}",
                why.message()
            ),
        )
        .label("bash could read the value as code here")
        .help(why.help(var.as_deref()));
        ctx.push_at(d, *range);
    }
}

/// `env`: NAME → template.
fn env(ctx: &mut Ctx, node: &Node, refs: &mut Vec<PlacedRef>) -> BTreeMap<String, Template> {
    let mut out = BTreeMap::new();
    let Some(f) = ctx.map(node, "`env`", None) else {
        return out;
    };
    for (name, key, value) in f.entries {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            let d = Diag::new(
                "env",
                format!("`{name}` is not a valid environment variable name"),
            )
            .label("invalid name")
            .help("use letters, digits and `_`, not starting with a digit");
            ctx.push(d, key.span);
            continue;
        }
        if name.starts_with("TUNA_") {
            let d = Diag::new(
                "env",
                format!("`{name}`: variables starting with `TUNA_` are set by tuna"),
            )
            .label("reserved")
            .help("choose another name");
            ctx.push(d, key.span);
            continue;
        }
        if matches!(value.kind, Kind::Scalar(_)) && value.is_null() {
            out.insert(name.to_string(), Template::literal(""));
        } else if let Some(t) = ctx.template(value, &format!("`env.{name}`"), refs) {
            out.insert(name.to_string(), t);
        }
    }
    out
}

pub(crate) fn read_defaults(ctx: &mut Ctx, node: &Node) -> Defaults {
    let mut d = Defaults::default();
    let Some(f) = ctx.map(node, "`defaults`", Some(keys::DEFAULTS)) else {
        return d;
    };
    d.retry = f.get("retry").and_then(|n| sections::retry(ctx, n));
    d.timeout = f
        .get("timeout")
        .and_then(|n| positive_duration(ctx, n, "`timeout`"));
    d.wait_for_capacity = f
        .get("wait_for_capacity")
        .and_then(|n| ctx.duration(n, "`wait_for_capacity`"));
    d.runs_on = f.get("runs-on").and_then(|n| sections::runs_on(ctx, n));
    if let Some(n) = f.get("env") {
        d.env = env(ctx, n, &mut d.refs);
    }
    d
}
