//! `${{ … }}` templates: parsed once at load time, rendered per run.

use serde::Serialize;

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

    /// Renders with `resolve` giving each reference's value; `quote` wraps each value (use
    /// [`shell_quote`] for text that reaches a shell, `|s| s.to_string()` otherwise).
    pub fn render(
        &self,
        mut resolve: impl FnMut(&Ref) -> String,
        quote: impl Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Ref(r) => out.push_str(&quote(&resolve(r))),
            }
        }
        out
    }
}

/// Quotes a value for bash so it is always one literal word: `'…'` with `'` written `'\''`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}
