//! `${{ … }}` templates: parsed once at load time, rendered per run.

use serde::Serialize;
use tuna_runners::shell::quote;

use super::shell_lex::Place;

/// A string with `${{ … }}` references, parsed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Template {
    /// The source text, as written.
    pub source: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum Part {
    Literal(String),
    Ref(Ref),
}

/// What a `${{ … }}` names.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ref {
    Param(String),
    /// `steps.STEP.outputs.PATH`: a declared output of an upstream step.
    StepOutput {
        step: String,
        output: String,
    },
    RunId,
    ScheduledTime,
}

impl Template {
    /// Every reference, in order.
    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// Renders with `resolve` giving each reference's value; `wrap` wraps each value
    /// (`|s| s.to_string()` for text that reaches no shell; a `run:` script is rendered by
    /// [`Template::render_script`]).
    pub fn render(
        &self,
        mut resolve: impl FnMut(&Ref) -> String,
        wrap: impl Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Ref(r) => out.push_str(&wrap(&resolve(r))),
            }
        }
        out
    }
}

/// The environment variable through which every step sees param `name`: `TUNA_PARAM_` and the
/// name in upper case with `-` written `_` (`base-model` → `TUNA_PARAM_BASE_MODEL`).
pub fn param_env_name(name: &str) -> String {
    format!("TUNA_PARAM_{}", name.to_ascii_uppercase().replace('-', "_"))
}

impl Template {
    /// Renders a `run:` script: each reference's value (from `resolve`) quoted for the place
    /// it stands in (see `shell_lex`), so that it reaches the command byte for byte and never
    /// as shell syntax: unquoted or in `$(…)` one single-quoted word; inside `"…"`, `'…'` or
    /// `$'…'` the quotes are closed, the quoted word put in, and the quotes opened again; in
    /// an unquoted here-document `${TUNA_PARAM_X}` (a param) or `${TUNA_RUN_ID}`, else
    /// `$(printf %s WORD)`; in a comment the value with its line breaks made spaces.
    ///
    /// Errors for a placement the loader refuses (only a template that was not loaded from a
    /// file can have one) and for a line break in a value that goes into a here-document
    /// through `printf`.
    pub fn render_script(&self, mut resolve: impl FnMut(&Ref) -> String) -> Result<String, String> {
        let places = super::shell_lex::places(self);
        let mut out = String::new();
        let mut n = 0;
        for p in &self.parts {
            let r = match p {
                Part::Literal(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Ref(r) => r,
            };
            let place = places[n]
                .clone()
                .map_err(|why| format!("a reference cannot be quoted {}", why.message()))?;
            n += 1;
            let value = resolve(r);
            let q = quote(&value);
            match place {
                Place::Bare => out.push_str(&q),
                Place::Double => out.push_str(&format!("\"{q}\"")),
                Place::Single => out.push_str(&format!("'{q}'")),
                Place::AnsiC => out.push_str(&format!("'{q}$'")),
                Place::Comment => out.push_str(&quote(&value.replace(['\n', '\r'], " "))),
                Place::Heredoc => match r {
                    Ref::Param(name) => out.push_str(&format!("${{{}}}", param_env_name(name))),
                    Ref::RunId => out.push_str("${TUNA_RUN_ID}"),
                    _ if value.contains('\n') => {
                        return Err(format!(
                            "a value with a line break cannot go into a here-document: {value:?}"
                        ));
                    }
                    _ => out.push_str(&format!("$(printf %s {q})")),
                },
            }
        }
        Ok(out)
    }
}
