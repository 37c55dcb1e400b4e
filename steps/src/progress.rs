//! How far a running step has come (`$TUNA_PROGRESS`): a small JSON file the step rewrites
//! (whole, by rename) while it runs and tuna reads for `tuna status` and the `tuna run` bars.
//! Written here by the built-in kinds, read by the orchestrator; a `run:` script may write the
//! same format itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The file's content, e.g. `{"done": 12, "total": 40, "unit": "steps", "rate": 1234.5,
/// "rate_unit": "tokens/s", "message": "loss 2.31"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    /// Units of work finished.
    pub done: u64,
    /// Units of work in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// What a unit is (`steps`, `files`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// A throughput, in `rate_unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_unit: Option<String>,
    /// A short note (the loss so far, the file being read, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The longest message shown; the rest of a longer one is cut.
const MESSAGE_CHARS: usize = 80;

impl StepProgress {
    /// The file at `path`, or `None` when it is absent, not a regular file, too big or not
    /// this format (a step writing it wrongly never breaks `tuna status`).
    pub fn read(path: &Path) -> Option<StepProgress> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if !meta.is_file() || meta.len() > 64 * 1024 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        if !v.is_object() {
            return None;
        }
        serde_json::from_value(v).ok()
    }

    /// Writes the file whole: a temporary file beside it, renamed over it.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, serde_json::to_vec(self).expect("progress serializes"))?;
        std::fs::rename(&tmp, path)
    }

    /// One line for people: `12/40 steps · 1,234 tokens/s · loss 2.31`.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        let unit = self.unit.as_deref().map(clean).unwrap_or_default();
        let count = match self.total {
            Some(t) => format!("{}/{}", self.done, t),
            None => self.done.to_string(),
        };
        parts.push(if unit.is_empty() {
            count
        } else {
            format!("{count} {unit}")
        });
        if let Some(r) = self.rate.filter(|r| r.is_finite() && *r >= 0.0) {
            let per = self.rate_unit.as_deref().map(clean).unwrap_or_default();
            let r = thousands(r);
            parts.push(if per.is_empty() {
                r
            } else {
                format!("{r} {per}")
            });
        }
        if let Some(m) = self.message.as_deref().map(clean)
            && !m.is_empty()
        {
            parts.push(m);
        }
        parts.join(" · ")
    }
}

/// Text from a step, made safe for one terminal line: control characters become spaces, at
/// most [`MESSAGE_CHARS`] characters.
fn clean(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MESSAGE_CHARS)
        .collect();
    one.trim().to_string()
}

/// A rate rounded (half away from zero) to a whole number with thousands separators (`1,234`); below 10, one
/// decimal (`2.5`).
fn thousands(x: f64) -> String {
    if x < 10.0 {
        return format!("{x:.1}");
    }
    let digits = (x.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes a step's progress file at most every [`ProgressFile::EVERY`], and always the
/// last update (`done == total`); a failed write is reported once and never fails the step.
pub struct ProgressFile {
    path: Option<PathBuf>,
    every: Duration,
    last: Option<Instant>,
    warned: bool,
}

impl ProgressFile {
    /// The shortest time between two writes.
    pub const EVERY: Duration = Duration::from_millis(250);

    /// `path`: `$TUNA_PROGRESS`, when tuna gave one (none: updates go nowhere).
    pub fn new(path: Option<PathBuf>) -> ProgressFile {
        ProgressFile {
            path,
            every: Self::EVERY,
            last: None,
            warned: false,
        }
    }

    /// Records `p` unless one was written less than [`Self::EVERY`] ago (a final one always).
    pub fn update(&mut self, p: &StepProgress) {
        let Some(path) = &self.path else { return };
        let last = p.total.is_some_and(|t| p.done >= t);
        if !last && self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        if let Err(e) = p.write(path)
            && !self.warned
        {
            self.warned = true;
            eprintln!("progress: writing {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u64, total: u64) -> StepProgress {
        StepProgress {
            done,
            total: Some(total),
            unit: Some("steps".into()),
            rate: Some(1234.5),
            rate_unit: Some("tokens/s".into()),
            message: Some("loss 2.31".into()),
        }
    }

    #[test]
    fn a_line_shows_count_rate_and_message() {
        assert_eq!(
            at(12, 40).line(),
            "12/40 steps · 1,235 tokens/s · loss 2.31"
        );
        let bare = StepProgress {
            done: 3,
            total: None,
            unit: None,
            rate: None,
            rate_unit: None,
            message: None,
        };
        assert_eq!(bare.line(), "3");
        let slow = StepProgress {
            rate: Some(2.46),
            rate_unit: Some("files/s".into()),
            message: Some("a\nb\x1b[2J".into()),
            ..bare
        };
        assert_eq!(slow.line(), "3 · 2.5 files/s · a b [2J");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(f64::from(u32::MAX)).matches(',').count(), 3);
    }

    #[test]
    fn the_file_round_trips_and_bad_files_read_as_nothing() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("progress.json");
        assert_eq!(StepProgress::read(&path), None);
        at(1, 4).write(&path).unwrap();
        assert_eq!(StepProgress::read(&path), Some(at(1, 4)));
        assert!(!d.path().join("progress.json.tmp").exists());
        // The documented format, as a script writes it.
        std::fs::write(&path, r#"{"done": 7, "total": 9, "unit": "files"}"#).unwrap();
        assert_eq!(StepProgress::read(&path).unwrap().line(), "7/9 files");
        for bad in ["", "{", "[1]", r#"{"done": -1}"#, r#"{"total": 3}"#] {
            std::fs::write(&path, bad).unwrap();
            assert_eq!(StepProgress::read(&path), None, "{bad}");
        }
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert_eq!(StepProgress::read(&path), None);
    }

    #[test]
    fn updates_are_spaced_but_the_last_is_always_written() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("progress.json");
        let mut f = ProgressFile::new(Some(path.clone()));
        // Spaced far apart, so the test does not depend on the machine's speed.
        f.every = Duration::from_secs(3600);
        f.update(&at(1, 3));
        f.update(&at(2, 3));
        // Within `every` of the first write: the second is dropped.
        assert_eq!(StepProgress::read(&path).unwrap().done, 1);
        f.update(&at(3, 3));
        assert_eq!(StepProgress::read(&path).unwrap().done, 3);
        // Nowhere to write: nothing happens.
        ProgressFile::new(None).update(&at(1, 1));
    }
}
