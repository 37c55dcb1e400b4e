//! Looking at many attempts of one host in one round trip. Every watcher puts its attempt on
//! the board before it waits for the connection; whichever watcher gets the connection first
//! asks the wrapper about all of them at once and leaves the answers for the others.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::conn::{Conn, OpError};
use crate::shell::quote;

/// What one look at an attempt found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Running,
    /// Its `exit.json`.
    Exited(String),
    /// The supervisor is gone without an exit record.
    Dead,
    /// No wrapper has claimed the attempt (yet).
    Unclaimed,
    /// The attempt folder is not there.
    Missing,
}

/// An attempt's state and the sizes of its two logs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Polled {
    pub state: State,
    pub stdout_len: u64,
    pub stderr_len: u64,
}

#[derive(Default)]
struct Inner {
    pending: BTreeSet<String>,
    answers: HashMap<String, Polled>,
}

/// The attempts waiting for a look, and answers not yet picked up.
#[derive(Default)]
pub(crate) struct PollBoard {
    inner: Mutex<Inner>,
}

/// At most this many attempts per command line.
const BATCH: usize = 200;

impl PollBoard {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `dir` on the board (before waiting for the connection).
    pub fn want(&self, dir: &str) {
        self.lock().pending.insert(dir.to_owned());
    }

    /// Called with the connection held: the answer about `dir`, from an earlier batch or from
    /// a new one that also answers every other attempt on the board.
    pub fn poll(&self, conn: &mut Conn, dir: &str) -> Result<Polled, OpError> {
        let batch: Vec<String> = {
            let mut inner = self.lock();
            if let Some(answer) = inner.answers.remove(dir) {
                inner.pending.remove(dir);
                return Ok(answer);
            }
            inner.pending.insert(dir.to_owned());
            let mut batch: Vec<String> = inner.pending.iter().take(BATCH).cloned().collect();
            if !batch.iter().any(|d| d == dir) {
                batch.pop();
                batch.push(dir.to_owned());
            }
            batch
        };
        let quoted: Vec<String> = batch.iter().map(|d| quote(d)).collect();
        let out = conn.exec(&format!(
            "sh {} poll {}",
            quote(&conn.wrapper),
            quoted.join(" ")
        ))?;
        let answers = parse(&out.stdout);
        let mut inner = self.lock();
        for (d, answer) in answers {
            if inner.pending.remove(&d) {
                inner.answers.insert(d, answer);
            }
        }
        inner.answers.remove(dir).ok_or_else(|| {
            OpError::Fatal(format!(
                "the wrapper said nothing about {dir}: {} {}",
                out.stdout.trim(),
                out.stderr.trim()
            ))
        })
    }
}

/// `== DIR` blocks: the state word, the two log sizes, and exit.json for an ended attempt.
fn parse(text: &str) -> Vec<(String, Polled)> {
    let mut out = Vec::new();
    for block in text.split("== ").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let Some(dir) = lines.next() else { continue };
        let word = lines.next().unwrap_or("").trim();
        let sizes: Vec<u64> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let rest: Vec<&str> = lines.collect();
        let state = match word {
            "exit" => State::Exited(rest.join("\n").trim().to_owned()),
            "running" => State::Running,
            "dead" => State::Dead,
            "unclaimed" => State::Unclaimed,
            _ => State::Missing,
        };
        out.push((
            dir.to_owned(),
            Polled {
                state,
                stdout_len: sizes.first().copied().unwrap_or(0),
                stderr_len: sizes.get(1).copied().unwrap_or(0),
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{State, parse};

    #[test]
    fn reads_one_block_per_attempt() {
        let text = "== /w/runs/r/a/1\nrunning\n5 0\n== /w/runs/r/b/1\nexit\n3 4\n{\"outcome\":{}}\n\
                    == /w/runs/r/c/1\nmissing\n0 0\n";
        let got = parse(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, "/w/runs/r/a/1");
        assert_eq!(got[0].1.state, State::Running);
        assert_eq!(got[0].1.stdout_len, 5);
        assert_eq!(got[1].1.state, State::Exited("{\"outcome\":{}}".into()));
        assert_eq!(got[1].1.stderr_len, 4);
        assert_eq!(got[2].1.state, State::Missing);
    }
}
