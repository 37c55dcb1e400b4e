//! The `secrets:` section (where each secret's value comes from at run time) and a step's
//! `secrets:` list (which of them it gets, as environment variables of the same names). The
//! file holds sources only; values are read when a run starts (`engine::secrets`) and are never
//! stored.

use indexmap::IndexMap;

use super::ctx::Ctx;
use super::diag::Diag;
use super::keys;
use super::model::SecretSource;
use super::suggest::help_for;
use super::yaml::{Node, Span};

/// Whether `name` can be a secret: an environment variable name, not one of tuna's own.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("TUNA_")
        && name.len() <= 128
}

/// The top-level `secrets:` mapping: `NAME: { env: VAR }` or `NAME: { file: /path }`.
pub(crate) fn section(ctx: &mut Ctx, node: &Node) -> IndexMap<String, SecretSource> {
    let mut out = IndexMap::new();
    let Some(f) = ctx.map(node, "`secrets`", None) else {
        return out;
    };
    for (name, key, value) in f.entries {
        if !valid_name(name) {
            let d = Diag::new("secret", format!("invalid secret name `{name}`"))
                .label("not a secret name")
                .help("a secret reaches its steps as an environment variable of its name: upper-case letters, digits and `_`, not starting with a digit nor with `TUNA_`");
            ctx.push(d, key.span);
            continue;
        }
        let what = format!("secret `{name}`");
        let Some(src) = ctx.map(value, &what, Some(keys::SECRET)) else {
            continue;
        };
        let source = match (src.get("env"), src.get("file")) {
            (Some(var), None) => ctx.string(var, "`env`").and_then(|v| {
                if v.starts_with("TUNA_") {
                    let d = Diag::new("secret", format!("{what} reads tuna's own variable `{v}`"))
                        .label("tuna's own")
                        .help("tuna's variables (tokens, passphrases) never reach steps");
                    ctx.push(d, var.span);
                    None
                } else {
                    Some(SecretSource::Env(v.to_string()))
                }
            }),
            (None, Some(file)) => ctx.string(file, "`file`").and_then(|p| {
                if p.starts_with('/') || p.starts_with("~/") {
                    Some(SecretSource::File(p.to_string()))
                } else {
                    let d = Diag::new("secret", format!("{what}: `file` must be an absolute path"))
                        .label("relative")
                        .help("a secret file stays outside the project (it must never travel with it): `/run/secrets/hf_token` or `~/.config/…`");
                    ctx.push(d, file.span);
                    None
                }
            }),
            _ => {
                let d = Diag::new("secret", format!("{what} needs exactly one of `env` and `file`"))
                    .label("here")
                    .help("e.g. `HF_TOKEN: { env: HF_TOKEN }` or `HF_TOKEN: { file: /run/secrets/hf }`");
                ctx.push(d, value.span);
                None
            }
        };
        if let Some(s) = source {
            out.insert(name.to_string(), s);
        }
    }
    out
}

/// Checks a step's `secrets:` list against the section and the step's `env:` keys; returns
/// the names it keeps.
pub(crate) fn check_step(
    ctx: &mut Ctx,
    step: &str,
    listed: &[(String, Span)],
    declared: &IndexMap<String, SecretSource>,
    env_keys: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, span) in listed {
        if !declared.contains_key(name) {
            let help = help_for(name, declared.keys().map(String::as_str)).unwrap_or_else(|| {
                "declare it in the top-level `secrets:` section, e.g. `secrets: { HF_TOKEN: { env: HF_TOKEN } }`".into()
            });
            let d = Diag::new(
                "secret",
                format!("step `{step}` lists unknown secret `{name}`"),
            )
            .label("not declared")
            .help(help);
            ctx.push(d, *span);
        } else if env_keys.contains(&name.as_str()) {
            let d = Diag::new(
                "secret",
                format!("step `{step}` sets `{name}` in `env:` and lists it as a secret"),
            )
            .label("set twice")
            .help("keep one: a secret's value comes from `secrets:`");
            ctx.push(d, *span);
        } else if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}
