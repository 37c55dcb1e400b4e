//! [`Redactor`]: masks secret values in a stream of bytes (a step's log), also where a value
//! is split across two chunks.

use std::io::{Read, Write};

/// What a masked value becomes.
pub const MASK: &[u8] = b"***";

/// Values shorter than this are not masked (masking every `1` or `a` would wreck the log).
pub const MIN_LEN: usize = 4;

/// Streams bytes through, replacing each occurrence of a secret value with [`MASK`].
#[derive(Debug)]
pub struct Redactor {
    values: Vec<Vec<u8>>,
    longest: usize,
    /// Bytes held back: the end of the input that may be the start of a value.
    held: Vec<u8>,
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = Vec<u8>>) -> Redactor {
        let mut values: Vec<Vec<u8>> = values.into_iter().filter(|v| v.len() >= MIN_LEN).collect();
        // The longest first, so a value that contains another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        let longest = values.first().map_or(0, Vec::len);
        Redactor {
            values,
            longest,
            held: Vec::new(),
        }
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Takes `input`; appends to `out` what is certain not to be part of a value.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.held.extend_from_slice(input);
        self.drain(out, false);
    }

    /// The end of the stream: appends the rest.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.drain(out, true);
    }

    /// Copies everything `from` yields to `to`, masked, until it ends (or fails), flushing
    /// after each chunk so a reader of `to` sees the output as it comes. Write errors are
    /// ignored: the stream is drained either way, so its writer never blocks.
    pub fn copy(&mut self, from: &mut dyn Read, to: &mut dyn Write) {
        let mut buf = vec![0u8; 64 << 10];
        let mut out = Vec::with_capacity(buf.len());
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.clear();
                    self.push(&buf[..n], &mut out);
                    let _ = to.write_all(&out).and_then(|()| to.flush());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        out.clear();
        self.finish(&mut out);
        let _ = to.write_all(&out).and_then(|()| to.flush());
    }

    fn drain(&mut self, out: &mut Vec<u8>, end: bool) {
        let buf = std::mem::take(&mut self.held);
        let mut i = 0;
        while let Some((at, len)) = self.next_match(&buf[i..]) {
            out.extend_from_slice(&buf[i..i + at]);
            out.extend_from_slice(MASK);
            i += at + len;
        }
        // A value may begin in the last `longest - 1` bytes: keep them for the next chunk.
        let keep = if end {
            0
        } else {
            self.longest.saturating_sub(1).min(buf.len() - i)
        };
        let cut = buf.len() - keep;
        out.extend_from_slice(&buf[i..cut]);
        self.held = buf[cut..].to_vec();
    }

    /// The earliest value in `hay` (the longest where several start at once): (offset, len).
    fn next_match(&self, hay: &[u8]) -> Option<(usize, usize)> {
        self.values
            .iter()
            .filter_map(|v| find(hay, v).map(|at| (at, v.len())))
            .min_by_key(|&(at, len)| (at, std::cmp::Reverse(len)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::Redactor;

    fn run(values: &[&str], chunks: &[&str]) -> String {
        let mut r = Redactor::new(values.iter().map(|v| v.as_bytes().to_vec()));
        let mut out = Vec::new();
        for c in chunks {
            r.push(c.as_bytes(), &mut out);
        }
        r.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_masked_also_across_chunks() {
        assert_eq!(run(&["hunter2"], &["pw=hunter2\n"]), "pw=***\n");
        assert_eq!(
            run(&["hunter2"], &["pw=hun", "ter2 and hunter", "2"]),
            "pw=*** and ***"
        );
        assert_eq!(
            run(&["hunter2"], &["h", "u", "n", "t", "e", "r", "2", "!"]),
            "***!"
        );
        assert_eq!(run(&["abcd", "abcdef"], &["xabcdefy abcd"]), "x***y ***");
    }

    #[test]
    fn near_misses_and_short_values_pass() {
        assert_eq!(run(&["hunter2"], &["hunter", "3 hunte"]), "hunter3 hunte");
        assert_eq!(run(&["ab"], &["ab ab"]), "ab ab");
        assert_eq!(run(&[], &["plain"]), "plain");
    }
}
