//! The text of a workflow file with a line index: turns YAML positions (line, character column)
//! into byte ranges for miette labels, and finds where a piece of a scalar sits in the file.

use super::yaml::{Pos, Span};

#[derive(Debug)]
pub(crate) struct Source<'t> {
    pub text: &'t str,
    line_starts: Vec<usize>,
}

impl<'t> Source<'t> {
    pub fn new(text: &'t str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Source { text, line_starts }
    }

    /// Byte offset of a position (clamped to the text).
    pub fn offset(&self, p: Pos) -> usize {
        let Some(&line_start) = self.line_starts.get(p.line.saturating_sub(1)) else {
            return self.text.len();
        };
        // ASCII up to the column (the common case): the column is the byte count, found
        // without walking the rest of a long line (a flow list of thousands of names).
        if let Some(prefix) = self.text.as_bytes()[line_start..].get(..p.col)
            && prefix.is_ascii()
            && !prefix.contains(&b'\n')
        {
            return line_start + p.col;
        }
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let line = &self.text[line_start..line_end];
        line_start
            + line
                .char_indices()
                .nth(p.col)
                .map_or(line.len(), |(i, _)| i)
    }

    /// Byte range `(offset, len)` of a span. A span that ends at a line's end is trimmed of the
    /// trailing newline so carets stay on the line.
    pub fn range(&self, s: Span) -> (usize, usize) {
        let a = self.offset(s.start);
        let b = self.offset(s.end).max(a);
        let slice = self.text[a..b].trim_end();
        (a, slice.len())
    }

    /// Byte offset of the start of the line holding `offset`.
    pub fn line_start(&self, offset: usize) -> usize {
        self.line_starts[self.line_starts.partition_point(|&s| s <= offset) - 1]
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        (line, col + 1)
    }

    /// Where `needle` (text from a scalar's value) sits inside the scalar at `span`, as a byte
    /// range; the whole scalar when it cannot be found verbatim (escapes, folding).
    pub fn find_in(&self, span: Span, needle: &str) -> (usize, usize) {
        self.find_each_in(span, &[needle])[0]
    }

    /// Where each of `needles` (pieces of a scalar's value, in order) sits inside the scalar
    /// at `span`: each searched after the previous one found, so repeated pieces get their own
    /// places and the search stays linear; the whole scalar for one not found verbatim.
    pub fn find_each_in(&self, span: Span, needles: &[&str]) -> Vec<(usize, usize)> {
        let (a, len) = self.range(span);
        let hay = &self.text[a..a + len];
        let mut cursor = 0;
        needles
            .iter()
            .map(|needle| match hay[cursor..].find(needle) {
                Some(i) if !needle.is_empty() => {
                    cursor += i + needle.len();
                    (a + cursor - needle.len(), needle.len())
                }
                _ => (a, len),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_line_cols_round_trip() {
        let s = Source::new("a: é\nbb: x\n");
        let off = s.offset(Pos { line: 2, col: 4 });
        assert_eq!(&s.text[off..off + 1], "x");
        assert_eq!(s.line_col(off), (2, 5));
        assert_eq!(s.line_col(0), (1, 1));
        // Past the line's end, and with a wide character before the column: clamped and
        // counted in characters, as before the ASCII shortcut.
        let s = Source::new("ab\né: x\n");
        assert_eq!(s.offset(Pos { line: 1, col: 9 }), 2);
        assert_eq!(&s.text[s.offset(Pos { line: 2, col: 3 })..][..1], "x");
    }
}
