//! Diagnostics: one problem in a workflow file ([`Diag`]) and the error a failed load returns
//! ([`LoadError`]: every problem of the file, in file order).
//!
//! Both are miette diagnostics (a code, a label at the span, a help line); [`render_plain`]
//! prints them without colors for snapshots and non-terminal output, and
//! [`LoadError::to_json`] gives the list the daemon returns. miette sees each diagnostic with
//! only its own clipped piece of the file (`snippet`), so rendering never panics on long lines
//! and costs no more than the diagnostics it shows.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};
use serde::Serialize;

use super::snippet::Snippet;

/// One problem in a workflow file.
#[derive(Debug, Clone, Serialize)]
pub struct Diag {
    /// `tuna::workflow::KIND`, e.g. `tuna::workflow::unknown_key`.
    pub code: String,
    pub message: String,
    /// The text at the caret.
    pub label: String,
    pub help: Option<String>,
    /// Byte range `(offset, len)` in the file; None when the problem has no place (an unreadable
    /// file, a workflow built in code).
    #[serde(skip)]
    pub span: Option<(usize, usize)>,
    /// 1-based line and column of the span's start.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Diag {
    /// A problem of kind `code` (the part after `tuna::workflow::`).
    pub(crate) fn new(code: &str, message: impl Into<String>) -> Self {
        Diag {
            code: format!("tuna::workflow::{code}"),
            message: message.into(),
            label: String::new(),
            help: None,
            span: None,
            line: None,
            column: None,
        }
    }

    pub(crate) fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

impl Diagnostic for Diag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (offset, len) = self.span?;
        let label = (!self.label.is_empty()).then(|| self.label.clone());
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label, offset, len,
        ))))
    }
}

/// Why a workflow did not load: every problem found in the file, in file order.
#[derive(Debug)]
pub struct LoadError {
    file: PathBuf,
    diags: Vec<Diag>,
    /// Each diagnostic with its piece of the file, for miette.
    shown: Vec<Shown>,
}

impl LoadError {
    pub(crate) fn new(file: &Path, text: &str, mut diags: Vec<Diag>) -> Self {
        diags.sort_by_key(|d| d.span.map_or(0, |s| s.0));
        let name: Arc<str> = file.display().to_string().into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let shown = diags
            .iter()
            .map(|d| Shown {
                diag: d.clone(),
                snippet: d
                    .span
                    .map(|range| Snippet::new(name.clone(), text, &line_starts, range)),
            })
            .collect();
        LoadError {
            file: file.to_path_buf(),
            diags,
            shown,
        }
    }

    /// The file as it was named to the loader.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every problem, in file order (never empty).
    pub fn diagnostics(&self) -> &[Diag] {
        &self.diags
    }

    /// `[{file, line, column, code, message, help}]`.
    pub fn to_json(&self) -> serde_json::Value {
        let file = self.file.display().to_string();
        self.diags
            .iter()
            .map(|d| {
                serde_json::json!({
                    "file": file,
                    "line": d.line,
                    "column": d.column,
                    "code": d.code,
                    "message": d.message,
                    "help": d.help,
                })
            })
            .collect()
    }

    /// The report as plain text without colors; see [`render_plain`].
    pub fn render_plain(&self) -> String {
        render_plain(self)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.diags.as_slice() {
            [one] => write!(f, "{}", one.message),
            many => write!(f, "{} problems in {}", many.len(), self.file.display()),
        }
    }
}

impl std::error::Error for LoadError {}

impl Diagnostic for LoadError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self.shown.as_slice() {
            [one] => one.code(),
            _ => Some(Box::new("tuna::workflow::invalid")),
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self.shown.as_slice() {
            [one] => one.help(),
            _ => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self.shown.as_slice() {
            [one] => one.labels(),
            _ => None,
        }
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        match self.shown.as_slice() {
            [one] => one.source_code(),
            _ => None,
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self.shown.as_slice() {
            [_] => None,
            many => Some(Box::new(many.iter().map(|d| d as &dyn Diagnostic))),
        }
    }
}

/// One diagnostic with the clipped piece of the file it shows (none for one without a place).
#[derive(Debug)]
struct Shown {
    diag: Diag,
    snippet: Option<Snippet>,
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Shown {}

impl Diagnostic for Shown {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag.code()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Diagnostic::help(&self.diag)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let s = self.snippet.as_ref()?;
        let label = (!self.diag.label.is_empty()).then(|| self.diag.label.clone());
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label, s.label.0, s.label.1,
        ))))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.snippet.as_ref().map(|s| s as &dyn SourceCode)
    }
}

/// Renders every problem of `err` as plain text (no colors, no links, 100 columns): each one
/// with its code, message, `file:line:col`, the source line with a caret under the span, and
/// its help; then a summary line.
pub fn render_plain(err: &LoadError) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_links(false)
        .with_width(100)
        .with_word_splitter(textwrap::WordSplitter::NoHyphenation)
        .with_word_separator(textwrap::WordSeparator::AsciiSpace);
    let mut out = String::new();
    for one in &err.shown {
        if handler.render_report(&mut out, one).is_err() {
            out.push_str(&one.diag.message);
        }
        out.push('\n');
    }
    let n = err.diags.len();
    out.push_str(&format!(
        "error: {} in {}\n",
        if n == 1 {
            "1 problem".to_string()
        } else {
            format!("{n} problems")
        },
        err.file.display()
    ));
    out
}
