//! The piece of a workflow file one diagnostic shows: the lines of its label and one line of
//! context either side, each clipped to [`MAX_LINE`] characters around the label (with `…`
//! where text was cut), as a miette [`SourceCode`] that keeps the file's line numbers.
//!
//! miette reads a whole source from its start for every span and formats columns with a width
//! argument that must fit in 16 bits (a label past column 65,535 panics); giving it only this
//! small window keeps rendering linear in the number of diagnostics and never panics.

use std::sync::Arc;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// The longest line shown, in characters (the rest is cut, marked `…`).
pub(crate) const MAX_LINE: usize = 160;
/// A label over more lines than this is shown on its first line only.
pub(crate) const MAX_LABEL_LINES: usize = 12;
/// Characters shown before the label on a clipped line.
const LEAD: usize = 60;

/// A window of a file: its text, where it starts, and where the label is in it.
#[derive(Debug, Clone)]
pub(crate) struct Snippet {
    name: Arc<str>,
    text: String,
    /// 0-based line of the file where `text` starts.
    first_line: usize,
    /// The label's byte range in `text`.
    pub label: (usize, usize),
    /// The label's 0-based line in `text` and its 0-based column in the file (characters).
    label_line: usize,
    label_col: usize,
}

impl Snippet {
    /// The window of `text` for a label at byte range `range`; `line_starts` is the file's
    /// line index (byte offset of each line).
    pub fn new(name: Arc<str>, text: &str, line_starts: &[usize], range: (usize, usize)) -> Self {
        let (offset, len) = (range.0.min(text.len()), range.1);
        let line_of = |o: usize| line_starts.partition_point(|&s| s <= o) - 1;
        let start_line = line_of(offset);
        let mut end_line = line_of((offset + len.saturating_sub(1)).min(text.len()).max(offset));
        let mut len = len.min(text.len() - offset);
        if end_line - start_line >= MAX_LABEL_LINES {
            end_line = start_line;
            let eol = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
            len = eol - offset;
        }
        let first = start_line.saturating_sub(1);
        let last = (end_line + 1).min(line_starts.len() - 1);
        let line_range = |line: usize| {
            let a = line_starts[line];
            let b = line_starts
                .get(line + 1)
                .map_or(text.len(), |&s| s.saturating_sub(1).max(a));
            (a, b.min(text.len()))
        };
        let long = (first..=last).any(|l| {
            let (a, b) = line_range(l);
            b - a > MAX_LINE && text[a..b].chars().count() > MAX_LINE
        });
        let label_col = text[line_starts[start_line]..offset].chars().count();
        let (out, label) = if !long {
            let (a, _) = line_range(first);
            let (_, b) = line_range(last);
            (text[a..b].to_string(), (offset - a, len.min(b - offset)))
        } else {
            // Each line clipped; the label kept on its first line.
            let mut out = String::new();
            let mut label = (0, 0);
            for line in first..=last {
                let (a, b) = line_range(line);
                if line > first {
                    out.push('\n');
                }
                let base = out.len();
                let (at, n) = if line == start_line {
                    (offset - a, len)
                } else {
                    (0, 0)
                };
                let (shown, at, n) = clip_around(&text[a..b], at, n);
                out.push_str(&shown);
                if line == start_line {
                    label = (base + at, n);
                }
            }
            (out, label)
        };
        Snippet {
            name,
            text: out.replace('\r', " "),
            first_line: first,
            label,
            label_line: start_line - first,
            label_col,
        }
    }
}

/// `line` cut to at most [`MAX_LINE`] characters keeping the bytes `at..at + len` (or as much
/// of them as fits) visible: the text, where the label starts in it and how long it is there.
fn clip_around(line: &str, at: usize, len: usize) -> (String, usize, usize) {
    if line.chars().count() <= MAX_LINE {
        let len = len.min(line.len() - at);
        return (line.to_string(), at, len);
    }
    // Start LEAD characters before the label, on a character boundary.
    let before: Vec<(usize, char)> = line[..at].char_indices().collect();
    let start = before.len().checked_sub(LEAD).map_or(0, |i| before[i].0);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let label_at = out.len() + (at - start);
    let mut end = start;
    for (n, (i, c)) in line[start..].char_indices().enumerate() {
        if n >= MAX_LINE {
            break;
        }
        end = start + i + c.len_utf8();
    }
    out.push_str(&line[start..end]);
    let shown_len = len.min(end.saturating_sub(at));
    if end < line.len() {
        out.push('…');
    }
    let label_at = label_at.min(out.len());
    (out, label_at, shown_len)
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let c = self.text.read_span(span, before, after)?;
        // The label itself (read with no context for the `[file:line:col]` header) gets the
        // file's own column, as the diagnostic's `column` says.
        let column = if c.line() == self.label_line && span.offset() == self.label.0 {
            self.label_col
        } else {
            c.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            c.data(),
            *c.span(),
            c.line() + self.first_line,
            column,
            c.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> Vec<usize> {
        let mut v = vec![0];
        v.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        v
    }

    #[test]
    fn short_lines_are_shown_as_they_are() {
        let text = "a: 1\nbb: 2\ncc: 3\ndd: 4\n";
        let s = Snippet::new("f".into(), text, &index(text), (11, 2));
        assert_eq!(s.text, "bb: 2\ncc: 3\ndd: 4");
        assert_eq!(&s.text[s.label.0..s.label.0 + s.label.1], "cc");
        assert_eq!((s.first_line, s.label_line, s.label_col), (1, 1, 0));
    }

    #[test]
    fn a_long_line_is_clipped_around_the_label() {
        let key = "k".repeat(70_000);
        let text = format!("x: 1\n{key}é: 1\nz: 2\n");
        let at = 5 + 70_000;
        let s = Snippet::new("f".into(), &text, &index(&text), (at, 2));
        let line = s.text.lines().nth(1).unwrap();
        assert!(line.chars().count() <= MAX_LINE + 2, "{}", line.len());
        assert!(line.starts_with('…'));
        assert_eq!(&s.text[s.label.0..s.label.0 + s.label.1], "é");
        assert_eq!(s.label_col, 70_000);
    }
}
