//! The loader's working state: the source with its line index, the problems found so far, and
//! typed readers over YAML nodes that record a diagnostic (at the node's span) instead of
//! stopping. Every reader returns `None` after reporting, so one pass finds every problem.

use std::collections::HashMap;
use std::time::Duration;

use super::diag::Diag;
use super::interp::TemplateError;
use super::source::Source;
use super::suggest::help_for;
use super::template::{Ref, Template};
use super::units::{parse_duration, parse_size};
use super::yaml::{Kind, Node, Span};

pub(crate) struct Ctx<'t> {
    pub src: Source<'t>,
    pub diags: Vec<Diag>,
}

/// A mapping's entries, keys already checked (strings, no duplicates, all known).
pub(crate) struct Fields<'n> {
    pub entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    pub fn key(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, k, _)| *k)
    }
}

/// A reference found in a template, with its byte range in the file.
pub(crate) type PlacedRef = (Ref, (usize, usize));

impl<'t> Ctx<'t> {
    pub fn new(text: &'t str) -> Self {
        Ctx {
            src: Source::new(text),
            diags: Vec::new(),
        }
    }

    /// Records `d` at byte range `range`.
    pub fn push_at(&mut self, mut d: Diag, range: (usize, usize)) {
        let (line, col) = self.src.line_col(range.0);
        d.span = Some(range);
        d.line = Some(line);
        d.column = Some(col);
        self.diags.push(d);
    }

    /// Records `d` at a node's span.
    pub fn push(&mut self, d: Diag, span: Span) {
        let range = self.src.range(span);
        self.push_at(d, range);
    }

    /// "`what` must be EXPECTED, found …".
    pub fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        let d = Diag::new(
            "wrong_type",
            format!("{what} must be {expected}, found {}", node.describe()),
        )
        .label(format!("expected {expected}"));
        self.push(d, node.span);
    }

    /// A mapping's entries. Reports keys that are not strings, duplicate keys, and (when
    /// `allowed` is given) unknown keys with a did-you-mean.
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: Option<&[&str]>,
    ) -> Option<Fields<'n>> {
        let Kind::Map(pairs) = &node.kind else {
            self.wrong_type(node, what, "a mapping");
            return None;
        };
        // Most mappings are small: a linear scan beats hashing there.
        let small = pairs.len() <= 16;
        let mut seen_small: Vec<(&str, Span)> = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut entries = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let Some(key) = k.as_str().filter(|_| matches!(k.kind, Kind::Scalar(_))) else {
                let d = Diag::new(
                    "wrong_type",
                    format!("keys in {what} must be strings, found {}", k.describe()),
                )
                .label("expected a string key");
                self.push(d, k.span);
                continue;
            };
            let first = if small {
                seen_small.iter().find(|(k, _)| *k == key).map(|(_, s)| s)
            } else {
                seen.get(key)
            };
            if let Some(first) = first {
                let d = Diag::new("duplicate_key", format!("duplicate key `{key}` in {what}"))
                    .label("defined again here")
                    .help(format!(
                        "`{key}` was first defined on line {}; keep one of them",
                        first.start.line
                    ));
                self.push(d, k.span);
                continue;
            }
            if small {
                seen_small.push((key, k.span));
            } else {
                seen.insert(key, k.span);
            }
            if let Some(allowed) = allowed
                && !allowed.contains(&key)
            {
                let help = help_for(key, allowed.iter().copied())
                    .unwrap_or_else(|| format!("keys allowed in {what}: {}", allowed.join(", ")));
                let d = Diag::new("unknown_key", format!("unknown key `{key}` in {what}"))
                    .label("unknown key")
                    .help(help);
                self.push(d, k.span);
                continue;
            }
            entries.push((key, k, v));
        }
        Some(Fields { entries })
    }

    /// A non-empty string (any scalar but null).
    pub fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match node.as_str() {
            Some(s) => Some(s),
            None => {
                self.wrong_type(node, what, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        let b = node.as_scalar().and_then(|s| s.as_bool());
        if b.is_none() {
            self.wrong_type(node, what, "`true` or `false`");
        }
        b
    }

    /// A number greater than zero.
    pub fn positive(&mut self, node: &Node, what: &str) -> Option<f64> {
        match node.as_scalar().and_then(|s| s.as_f64()) {
            Some(v) if v > 0.0 => Some(v),
            Some(v) => {
                let d = Diag::new(
                    "out_of_range",
                    format!("{what} must be greater than 0, found {v}"),
                )
                .label("must be > 0");
                self.push(d, node.span);
                None
            }
            None => {
                self.wrong_type(node, what, "a number");
                None
            }
        }
    }

    /// A whole number >= `min`.
    pub fn count(&mut self, node: &Node, what: &str, min: u32) -> Option<u32> {
        match node.as_scalar().and_then(|s| s.as_i64()) {
            Some(v) if v >= i64::from(min) && v <= i64::from(u32::MAX) => Some(v as u32),
            Some(v) => {
                let d = Diag::new(
                    "out_of_range",
                    format!("{what} must be at least {min}, found {v}"),
                )
                .label(format!("must be >= {min}"));
                self.push(d, node.span);
                None
            }
            None => {
                self.wrong_type(node, what, "a whole number");
                None
            }
        }
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn strings<'n>(&mut self, node: &'n Node, what: &str) -> Option<Vec<(&'n str, &'n Node)>> {
        match &node.kind {
            Kind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item
                        .as_str()
                        .filter(|_| matches!(item.kind, Kind::Scalar(_)))
                    {
                        Some(s) => out.push((s, item)),
                        None => self.wrong_type(item, &format!("each entry of {what}"), "a string"),
                    }
                }
                Some(out)
            }
            Kind::Scalar(s) if !s.is_null() => Some(vec![(s.value.as_str(), node)]),
            _ => {
                self.wrong_type(node, what, "a list of strings");
                None
            }
        }
    }

    /// A scalar's text, else a "must be EXPECTED" diagnostic.
    fn scalar_text<'n>(&mut self, node: &'n Node, what: &str, expected: &str) -> Option<&'n str> {
        let text = node
            .as_str()
            .filter(|_| matches!(node.kind, Kind::Scalar(_)));
        if text.is_none() {
            self.wrong_type(node, what, expected);
        }
        text
    }

    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.scalar_text(node, what, "a duration like `2h`")?;
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(m) => {
                let d = Diag::new("duration", format!("invalid duration for {what}: {m}"))
                    .label("not a duration")
                    .help("durations look like `90s`, `10m`, `2h`, `1d` or `1h30m`");
                self.push(d, node.span);
                None
            }
        }
    }

    pub fn size(&mut self, node: &Node, what: &str) -> Option<u64> {
        let text = self.scalar_text(node, what, "a size like `16GiB`")?;
        match parse_size(text) {
            Ok(b) => Some(b),
            Err(m) => {
                let d = Diag::new("size", format!("invalid size for {what}: {m}"))
                    .label("not a size")
                    .help("sizes look like `16GiB`, `512MiB` or `40GB`");
                self.push(d, node.span);
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(&mut self, node: &Node, what: &str, options: &[(&str, T)]) -> Option<T> {
        let text = self.string(node, what)?;
        if let Some((_, v)) = options.iter().find(|(o, _)| *o == text) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(o, _)| *o).collect();
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help =
            help_for(text, names.iter().copied()).unwrap_or_else(|| format!("one of {list}"));
        let d = Diag::new(
            "invalid_value",
            format!("{what} must be one of {list}, found `{text}`"),
        )
        .label("not an allowed value")
        .help(help);
        self.push(d, node.span);
        None
    }

    /// A string that may hold `${{ … }}` references; its references (with places) are appended
    /// to `refs`.
    pub fn template(
        &mut self,
        node: &Node,
        what: &str,
        refs: &mut Vec<PlacedRef>,
    ) -> Option<Template> {
        let text = self.string(node, what)?;
        match Template::parse_spanned(text) {
            Ok((t, spans)) => {
                let snippets: Vec<&str> = spans.iter().map(|&(a, len)| &text[a..a + len]).collect();
                let places = self.src.find_each_in(node.span, &snippets);
                refs.extend(t.refs().cloned().zip(places));
                Some(t)
            }
            Err(TemplateError {
                message,
                help,
                snippet,
            }) => {
                let d = Diag::new("template", message)
                    .label("malformed reference")
                    .help_opt(help);
                let range = self.src.find_in(node.span, &snippet);
                self.push_at(d, range);
                None
            }
        }
    }
}
