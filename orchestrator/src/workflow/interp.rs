//! Parsing `${{ … }}` references in strings into [`Template`]s.
//!
//! Known roots: `params.NAME`, `steps.STEP.outputs.PATH`, `run.id`, `run.scheduled_time`.
//! Whether a named param, step or output exists is checked by the loader, which knows them.

use super::suggest::help_for;
use super::template::{Part, Ref, Template};

/// A malformed reference: the message, a help line, and the text of the `${{ … }}` (or of the
/// unclosed rest) so the loader can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub message: String,
    pub help: Option<String>,
    pub snippet: String,
}

const ROOTS: [&str; 3] = ["params", "steps", "run"];

impl Template {
    /// Parses `text`, splitting it into literals and references.
    pub fn parse(text: &str) -> Result<Template, String> {
        Template::parse_detailed(text).map_err(|e| e.message)
    }

    pub(crate) fn parse_detailed(text: &str) -> Result<Template, TemplateError> {
        Template::parse_spanned(text).map(|(t, _)| t)
    }

    /// Like [`Template::parse`], also giving each reference's byte range in `text`.
    pub(crate) fn parse_spanned(
        text: &str,
    ) -> Result<(Template, Vec<(usize, usize)>), TemplateError> {
        let mut parts = Vec::new();
        let mut spans = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("${{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 3..];
            let Some(close) = after.find("}}") else {
                let snippet = rest[open..].lines().next().unwrap_or("").to_string();
                return Err(TemplateError {
                    message: "`${{` is never closed".into(),
                    help: Some("a reference looks like `${{ params.NAME }}`".into()),
                    snippet,
                });
            };
            let snippet = &rest[open..open + 3 + close + 2];
            spans.push((text.len() - rest.len() + open, snippet.len()));
            parts.push(Part::Ref(parse_ref(after[..close].trim(), snippet)?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok((
            Template {
                source: text.to_string(),
                parts,
            },
            spans,
        ))
    }

    /// A template with no references.
    pub fn literal(text: &str) -> Template {
        let parts = if text.is_empty() {
            vec![]
        } else {
            vec![Part::Literal(text.to_string())]
        };
        Template {
            source: text.to_string(),
            parts,
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_ref(expr: &str, snippet: &str) -> Result<Ref, TemplateError> {
    let fail = |message: String, help: Option<String>| {
        Err(TemplateError {
            message,
            help,
            snippet: snippet.to_string(),
        })
    };
    if expr.is_empty() {
        return fail(
            "empty reference `${{ }}`".into(),
            Some("a reference looks like `${{ params.NAME }}`".into()),
        );
    }
    let (root, rest) = expr.split_once('.').unwrap_or((expr, ""));
    match root {
        "params" if is_name(rest) => Ok(Ref::Param(rest.to_string())),
        "params" => fail(
            format!("`{expr}` is not a parameter reference"),
            Some("write `params.NAME`; names use letters, digits, `_` and `-`".into()),
        ),
        "steps" => {
            let mut it = rest.splitn(3, '.');
            match (it.next(), it.next(), it.next()) {
                (Some(step), Some("outputs"), Some(path)) if is_name(step) && !path.is_empty() && !path.contains(char::is_whitespace) => {
                    Ok(Ref::StepOutput { step: step.to_string(), output: path.to_string() })
                }
                _ => fail(
                    format!("`{expr}` is not a step output reference"),
                    Some("write `steps.STEP.outputs.PATH`, PATH one of the step's declared `outputs`".into()),
                ),
            }
        }
        "run" => match rest {
            "id" => Ok(Ref::RunId),
            "scheduled_time" => Ok(Ref::ScheduledTime),
            _ => fail(
                format!("unknown run field `{expr}`"),
                help_for(&format!("run.{rest}"), ["run.id", "run.scheduled_time"]).or_else(|| {
                    Some("the run fields are `run.id` and `run.scheduled_time`".into())
                }),
            ),
        },
        "secrets" => fail(
            format!("`{expr}`: a secret is never written into a command or a value"),
            Some(format!(
                "list it in the step's `secrets:` and read the variable: `\"${rest}\"`"
            )),
        ),
        "env" => fail(
            format!("`{expr}`: environment variables are not template references"),
            Some(format!("in a shell command write `${}`", rest)),
        ),
        other => fail(
            format!("unknown reference `{expr}`"),
            help_for(other, ROOTS)
                .or_else(|| Some("references start with `params.`, `steps.` or `run.`".into())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_literals_and_refs() {
        let t = Template::parse(
            "python train.py --lr ${{ params.lr }} --data ${{steps.prep.outputs.train.jsonl}}",
        )
        .unwrap();
        assert_eq!(
            t.refs().cloned().collect::<Vec<_>>(),
            vec![
                Ref::Param("lr".into()),
                Ref::StepOutput {
                    step: "prep".into(),
                    output: "train.jsonl".into()
                }
            ]
        );
        assert_eq!(t.parts.len(), 4);
        assert_eq!(
            Template::parse("${{ run.id }}-${{ run.scheduled_time }}")
                .unwrap()
                .refs()
                .count(),
            2
        );
        assert_eq!(
            Template::parse("echo ${HOME} $$").unwrap().parts,
            vec![Part::Literal("echo ${HOME} $$".into())]
        );
    }

    #[test]
    fn malformed_references() {
        let e = Template::parse_detailed("x ${{ params.lr").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.snippet.as_str()),
            ("`${{` is never closed", "${{ params.lr")
        );
        let e = Template::parse_detailed("${{ param.lr }}").unwrap_err();
        assert_eq!(e.help.as_deref(), Some("did you mean `params`?"));
        assert_eq!(e.snippet, "${{ param.lr }}");
        assert!(Template::parse("${{ }}").unwrap_err().contains("empty"));
        assert!(
            Template::parse("${{ steps.a.output.x }}")
                .unwrap_err()
                .contains("not a step output")
        );
        assert!(
            Template::parse("${{ params }}")
                .unwrap_err()
                .contains("not a parameter")
        );
        let e = Template::parse_detailed("${{ run.idd }}").unwrap_err();
        assert_eq!(e.help.as_deref(), Some("did you mean `run.id`?"));
        assert!(
            Template::parse_detailed("${{ env.HOME }}")
                .unwrap_err()
                .help
                .unwrap()
                .contains("$HOME")
        );
    }
}
