//! A YAML document as a tree whose every node knows where it sits in the file.
//!
//! serde_yaml forgets positions, so the loader reads the file a second time through
//! saphyr-parser's event stream and builds this tree: every key and value keeps its span, which
//! is what lets each diagnostic point at file:line:col. Duplicate keys are kept (the loader
//! reports them); aliases are expanded.
//!
//! Bounded so that no file costs more than a few times its size: at most [`MAX_TEXT_BYTES`] of
//! text, nesting at most [`MAX_DEPTH`] deep (refused at the collection that goes deeper, before
//! the parser's cost grows with depth), and aliases that copy at most [`ALIAS_NODES`] nodes
//! and [`ALIAS_BYTES`] bytes of text in all (a "billion laughs" file, or one string aliased
//! many times, is refused at the alias that goes over).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// A position: 1-based line, 0-based column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: Pos,
    pub end: Pos,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub value: String,
    /// Plain (unquoted, not a block scalar): only these resolve to null, booleans and numbers.
    pub plain: bool,
    /// `!!str`-style core tag suffix, if any.
    pub tag: Option<String>,
}

/// A YAML error from the event parser, or a limit the file went over.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub at: Pos,
    pub message: String,
    /// A limit of this reader (size, depth, aliases), not bad YAML.
    pub limit: bool,
}

/// The largest workflow file read (the daemon's request limit too).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// The deepest nesting of mappings and lists.
pub const MAX_DEPTH: usize = 64;
/// Nodes all aliases together may copy.
pub const ALIAS_NODES: usize = 100_000;
/// Bytes of scalar text all aliases together may copy.
pub const ALIAS_BYTES: usize = 1024 * 1024;

impl SyntaxError {
    fn limit(at: Pos, message: String) -> Self {
        SyntaxError {
            at,
            message,
            limit: true,
        }
    }
}

/// An anchored node and what one alias to it copies.
struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
}

impl Node {
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar's text if this is a scalar that is not null.
    pub fn as_str(&self) -> Option<&str> {
        self.as_scalar()
            .filter(|s| !s.is_null())
            .map(|s| s.value.as_str())
    }

    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(Scalar::is_null)
    }

    /// What this node is, in words, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar(s) if s.is_null() => "nothing (null)",
            Kind::Scalar(s) if s.plain && s.value.parse::<f64>().is_ok() => "a number",
            Kind::Scalar(s) if s.plain && matches!(s.value.as_str(), "true" | "false") => {
                "a boolean"
            }
            Kind::Scalar(_) => "a string",
        }
    }

    /// Nodes and bytes of scalar text in this tree.
    fn weight(&self) -> (usize, usize) {
        match &self.kind {
            Kind::Scalar(s) => (1, s.value.len()),
            Kind::Seq(v) => v.iter().fold((1, 0), |(n, b), x| {
                let (xn, xb) = x.weight();
                (n + xn, b + xb)
            }),
            Kind::Map(v) => v.iter().fold((1, 0), |(n, b), (k, x)| {
                let ((kn, kb), (xn, xb)) = (k.weight(), x.weight());
                (n + kn + xn, b + kb + xb)
            }),
        }
    }

    /// The node as a plain YAML value (for `with:` mappings handed to step kinds).
    pub fn to_value(&self) -> serde_yaml::Value {
        use serde_yaml::Value;
        match &self.kind {
            Kind::Scalar(s) => s.to_value(),
            Kind::Seq(v) => Value::Sequence(v.iter().map(Node::to_value).collect()),
            Kind::Map(v) => Value::Mapping(
                v.iter()
                    .map(|(k, x)| (k.to_value(), x.to_value()))
                    .collect(),
            ),
        }
    }
}

impl Scalar {
    pub fn is_null(&self) -> bool {
        self.plain
            && self.tag.is_none()
            && matches!(self.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }

    /// `true`/`false` (YAML 1.2 core schema spellings) of a plain scalar.
    pub fn as_bool(&self) -> Option<bool> {
        if !self.plain || self.tag.is_some() {
            return None;
        }
        match self.value.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// A finite number written as a plain scalar.
    pub fn as_f64(&self) -> Option<f64> {
        if !self.plain || self.tag.as_deref().is_some_and(|t| t == "str") {
            return None;
        }
        self.value.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// An integer written as a plain scalar.
    pub fn as_i64(&self) -> Option<i64> {
        if !self.plain || self.tag.as_deref().is_some_and(|t| t == "str") {
            return None;
        }
        self.value.parse::<i64>().ok()
    }

    fn to_value(&self) -> serde_yaml::Value {
        use serde_yaml::Value;
        if self.tag.as_deref() == Some("str") || !self.plain {
            return Value::String(self.value.clone());
        }
        if self.is_null() {
            return Value::Null;
        }
        if let Some(b) = self.as_bool() {
            return Value::Bool(b);
        }
        if let Ok(i) = self.value.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = self.value.parse::<u64>() {
            return Value::Number(u.into());
        }
        let looks_numeric = self
            .value
            .starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
        if looks_numeric && let Ok(f) = self.value.parse::<f64>() {
            return Value::Number(f.into());
        }
        match self.value.as_str() {
            ".inf" | ".Inf" | ".INF" | "+.inf" => Value::Number(f64::INFINITY.into()),
            "-.inf" | "-.Inf" | "-.INF" => Value::Number(f64::NEG_INFINITY.into()),
            ".nan" | ".NaN" | ".NAN" => Value::Number(f64::NAN.into()),
            _ => Value::String(self.value.clone()),
        }
    }
}

fn pos(m: &saphyr_parser::Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col(),
    }
}

enum Open {
    Seq {
        anchor: usize,
        start: Pos,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        start: Pos,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Parses one YAML document. `Ok(None)` for an empty file.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(SyntaxError::limit(
            Pos { line: 1, col: 0 },
            format!(
                "the file is {} bytes; a workflow file may have at most {MAX_TEXT_BYTES}",
                text.len()
            ),
        ));
    }
    let mut tree = Builder::default();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            at: pos(e.marker()),
            message: e.info().to_string(),
            limit: false,
        })?;
        if let Some((anchor, node)) = tree.event(event, pos(&span.start), pos(&span.end))? {
            tree.attach(anchor, node);
        }
    }
    Ok(tree.root.filter(|n| !n.is_null()))
}

/// The tree being built from the parser's events: the collections still open, the anchors
/// seen, what aliases may still copy.
struct Builder {
    anchors: HashMap<usize, Anchored>,
    stack: Vec<Open>,
    root: Option<Node>,
    documents: usize,
    alias_nodes: usize,
    alias_bytes: usize,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            anchors: HashMap::new(),
            stack: Vec::new(),
            root: None,
            documents: 0,
            alias_nodes: ALIAS_NODES,
            alias_bytes: ALIAS_BYTES,
        }
    }
}

impl Builder {
    /// Takes one event; a node it completes, with its anchor (0: none).
    fn event(
        &mut self,
        event: Event<'_>,
        start: Pos,
        end: Pos,
    ) -> Result<Option<(usize, Node)>, SyntaxError> {
        Ok(match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError {
                        at: start,
                        message: "a workflow file holds one YAML document; found a second `---`"
                            .into(),
                        limit: false,
                    });
                }
                None
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag
                    .filter(|t| t.is_yaml_core_schema())
                    .map(|t| t.suffix.clone());
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        value: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        tag,
                    }),
                    span: Span { start, end },
                };
                Some((anchor, node))
            }
            Event::Alias(id) => Some((0, self.alias(id, start, end)?)),
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                return Err(SyntaxError::limit(
                    start,
                    format!("mappings and lists nest deeper than {MAX_DEPTH} levels here"),
                ));
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Open::Seq {
                    anchor,
                    start,
                    items: Vec::new(),
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map {
                    anchor,
                    start,
                    entries: Vec::new(),
                    key: None,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => self.stack.pop().map(|open| close(open, end)),
            _ => None,
        })
    }

    /// A copy of the anchored node `id`, within what aliases may still copy.
    fn alias(&mut self, id: usize, start: Pos, end: Pos) -> Result<Node, SyntaxError> {
        let Some(a) = self.anchors.get(&id) else {
            return Err(SyntaxError {
                at: start,
                message: "alias to an unknown anchor".into(),
                limit: false,
            });
        };
        if a.nodes > self.alias_nodes || a.bytes > self.alias_bytes {
            return Err(SyntaxError::limit(
                start,
                format!(
                    "aliases copy too much: all aliases of a file may copy at most \
                     {ALIAS_NODES} nodes and {ALIAS_BYTES} bytes of text"
                ),
            ));
        }
        self.alias_nodes -= a.nodes;
        self.alias_bytes -= a.bytes;
        let mut node = a.node.clone();
        node.span = Span { start, end };
        Ok(node)
    }

    /// Puts a finished node where it belongs: remembered under its anchor, then into the open
    /// collection (as a key or a value in a mapping) or as the root.
    fn attach(&mut self, anchor: usize, node: Node) {
        if anchor != 0 {
            let (nodes, bytes) = node.weight();
            let node = node.clone();
            self.anchors.insert(anchor, Anchored { node, nodes, bytes });
        }
        match self.stack.last_mut() {
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => self.root = Some(node),
        }
    }
}

/// A closed collection as a node (it ends where its last item ends), with its anchor.
fn close(open: Open, end: Pos) -> (usize, Node) {
    match open {
        Open::Seq {
            anchor,
            start,
            items,
        } => {
            let end = items.last().map_or(end, |n| n.span.end);
            let span = Span { start, end };
            (
                anchor,
                Node {
                    kind: Kind::Seq(items),
                    span,
                },
            )
        }
        Open::Map {
            anchor,
            start,
            entries,
            ..
        } => {
            let end = entries.last().map_or(end, |(_, v)| v.span.end);
            let span = Span { start, end };
            (
                anchor,
                Node {
                    kind: Kind::Map(entries),
                    span,
                },
            )
        }
    }
}

/// Whether libyaml may be asked to word a syntax error: its scanner's cost is the number of
/// tokens times the flow nesting depth, and the file's count of `[` and `{` bounds that depth
/// whatever quotes and block scalars hide (the 10M-execution fuzz run found a 109 KB file whose
/// `"` inside a block scalar hid 109,000 `{` from [`flow_too_deep`]'s scan: libyaml took 6 s).
pub(crate) fn libyaml_is_cheap(text: &str) -> bool {
    text.bytes().filter(|b| matches!(b, b'[' | b'{')).count() <= 4 * MAX_DEPTH
}

/// Where flow collections (`[`, `{`) first nest deeper than [`MAX_DEPTH`], by a linear scan
/// that skips quoted scalars and comments (brackets in plain scalars count, so it may see depth
/// a real parser would not). For a file the event parser refused: libyaml, which words errors
/// better, takes time quadratic in such depth, so it is not asked then.
pub(crate) fn flow_too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let starts_token = |i: usize| i == 0 || b" \t\n\r[{,:-?".contains(&b[i - 1]);
    while i < b.len() {
        match b[i] {
            b'#' if starts_token(i) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') if starts_token(i) => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if q == b'"' && b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libyaml_is_not_asked_about_a_file_with_many_flow_openers() {
        // A quote in a block scalar hides the braces from the quote-aware scan.
        let text = format!(
            "name: x\nsteps:\n  a:\n    run: |\n      echo \"${{{{ run.id }}}}\n    outputs: [{}\n",
            "{".repeat(10_000)
        );
        assert_eq!(flow_too_deep(&text), None);
        assert!(!libyaml_is_cheap(&text));
        assert!(libyaml_is_cheap("a: [1, {b: 2}]\n"));
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let n = parse("name: x\nsteps:\n  a:\n    run: echo hi\n")
            .unwrap()
            .unwrap();
        let Kind::Map(top) = &n.kind else { panic!() };
        let (k, _) = &top[1];
        assert_eq!(k.as_str(), Some("steps"));
        assert_eq!(k.span.start, Pos { line: 2, col: 0 });
        let Kind::Map(steps) = &top[1].1.kind else {
            panic!()
        };
        let Kind::Map(a) = &steps[0].1.kind else {
            panic!()
        };
        assert_eq!(a[0].1.as_str(), Some("echo hi"));
        assert_eq!(a[0].1.span.start, Pos { line: 4, col: 9 });
    }

    #[test]
    fn scalars_resolve_like_yaml() {
        let n = parse("a: [1, 2.5, true, ~, '3', x, 2e-4]")
            .unwrap()
            .unwrap();
        let Kind::Map(m) = &n.kind else { panic!() };
        let v = m[0].1.to_value();
        assert_eq!(
            serde_yaml::to_string(&v).unwrap(),
            "- 1\n- 2.5\n- true\n- null\n- '3'\n- x\n- 0.0002\n"
        );
    }

    #[test]
    fn flow_depth_is_found_by_a_linear_scan() {
        let deep = format!("a: {}{}", "[".repeat(70), "]".repeat(70));
        assert_eq!(flow_too_deep(&deep), Some(3 + MAX_DEPTH));
        let quoted = format!(
            "a: \"{}\" # {}\nb: '{}'",
            "[".repeat(99),
            "{".repeat(99),
            "[".repeat(99)
        );
        assert_eq!(flow_too_deep(&quoted), None);
        assert_eq!(flow_too_deep("a: [[1], {b: [2]}]"), None);
    }

    #[test]
    fn aliases_expand_and_second_documents_are_refused() {
        let n = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        let Kind::Map(m) = &n.kind else { panic!() };
        assert!(matches!(&m[1].1.kind, Kind::Seq(v) if v.len() == 2));
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.at.line, 2);
        assert!(parse("").unwrap().is_none());
    }
}
