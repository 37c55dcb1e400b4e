//! The run's journal: one append-only file per run folder (`RUN/.journal`; the dot keeps it
//! apart from the step folders, whose names have none) that holds, for every
//! local attempt of the run, its claim (the waiter that owns it) and its exit record. It
//! replaces the per-attempt `claim` and `exit.json` files: two inodes a step, and inode
//! creation was most of a short step's cost.
//!
//! A record is one line, `CHECK JSON\n`, where CHECK is the first 8 hex digits of the JSON's
//! blake3. Writers append under an exclusive `flock`. Every process that reads the journal
//! (a second launch of the attempt, a resumed tuna) sees a claim as soon as it is appended,
//! before the script starts: that is what keeps a script from running twice when tuna or the
//! supervisor is killed. The claim reaches the disk (`fdatasync`) right after the script has
//! started, while it runs, so a machine that loses power within that moment may run the
//! script again on resume (as it does anyway for a script the power loss killed). An exit
//! record is not synced on its own: the next claim's sync carries it to disk (fsyncs in
//! batches), and a launcher that is told of it records the outcome in tuna's store; only when
//! no launcher listens any more does the waiter sync it at once. A
//! writer killed mid-record leaves a torn line: the next writer ends it with a newline before
//! appending, and readers skip lines whose check fails (and count them). An unfinished last
//! line (no newline yet) is left for the next read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::exit_record::ExitRecord;
use super::proc_id::ProcId;

/// The journal's file name, in the run folder.
pub const JOURNAL: &str = ".journal";

/// One record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Entry {
    /// `waiter` owns the attempt: it alone runs its script.
    Claim { attempt: PathBuf, waiter: ProcId },
    /// How the attempt ended.
    Exit {
        attempt: PathBuf,
        record: ExitRecord,
    },
}

/// The journal of the run an attempt folder belongs to: `RUN/STEP/ATTEMPT` → `RUN/.journal`.
pub fn path_for(attempt_dir: &Path) -> PathBuf {
    let run = attempt_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(attempt_dir);
    run.join(JOURNAL)
}

/// The exit record of the attempt in `attempt_dir`, from its run's journal; `None` while there
/// is none.
pub fn exit_of(attempt_dir: &Path) -> io::Result<Option<ExitRecord>> {
    let mut index = Index::default();
    index.refresh(&path_for(attempt_dir))?;
    Ok(index.exit(attempt_dir).cloned())
}

/// What one journal has said so far, read incrementally.
#[derive(Debug, Default)]
pub struct Index {
    /// Bytes read and parsed (always at a line's end).
    offset: u64,
    claims: HashMap<PathBuf, ProcId>,
    exits: HashMap<PathBuf, ExitRecord>,
    /// Lines whose check failed: records torn by a writer that was killed.
    torn: usize,
    /// Whether exit records are passed over (a waiter needs the claims only).
    claims_only: bool,
}

impl Index {
    /// An index that keeps the claims only: exit records are passed over unread.
    pub(crate) fn claims_only() -> Index {
        Index {
            claims_only: true,
            ..Index::default()
        }
    }

    pub fn claim(&self, attempt: &Path) -> Option<ProcId> {
        self.claims.get(attempt).copied()
    }

    pub fn exit(&self, attempt: &Path) -> Option<&ExitRecord> {
        self.exits.get(attempt)
    }

    /// How many torn records were skipped.
    pub fn torn(&self) -> usize {
        self.torn
    }

    /// Reads what was appended to the journal at `path` since the last call (nothing when the
    /// file does not exist yet).
    pub fn refresh(&mut self, path: &Path) -> io::Result<()> {
        match File::open(path) {
            Ok(file) => self.read_from(&file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn read_from(&mut self, file: &File) -> io::Result<()> {
        let len = file.metadata()?.len();
        self.read_to(file, len).map(drop)
    }

    /// Reads what the journal holds before byte `len` (its length, as its writer saw it under
    /// the lock); whether a record appended at `len` starts on a line of its own (the bytes
    /// before end with a newline, or there are none).
    fn read_to(&mut self, file: &File, len: u64) -> io::Result<bool> {
        if len < self.offset {
            // An append-only file does not shrink; should it, its tail is looked at afresh.
            return ends_a_line(file, len);
        }
        let mut bytes = vec![0; (len - self.offset) as usize];
        let mut got = 0;
        while got < bytes.len() {
            match file.read_at(&mut bytes[got..], self.offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(got);
        // `offset` is 0 or just past a newline.
        let fresh_line = bytes.last().is_none_or(|&b| b == b'\n');
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => end + 1,
            None => return Ok(fresh_line),
        };
        for line in bytes[..complete].split(|&b| b == b'\n') {
            if line.is_empty() || self.claims_only && line.get(9..).is_some_and(is_exit) {
                continue;
            }
            match decode(line) {
                Some(Entry::Claim { attempt, waiter }) => {
                    self.claims.entry(attempt).or_insert(waiter);
                }
                Some(Entry::Exit { attempt, record }) => {
                    self.exits.entry(attempt).or_insert(record);
                }
                None => self.torn += 1,
            }
        }
        self.offset += complete as u64;
        Ok(fresh_line)
    }
}

/// Whether the first `len` bytes of `file` end with a newline (or there are none).
fn ends_a_line(file: &File, len: u64) -> io::Result<bool> {
    let mut last = [0u8];
    Ok(len == 0 || file.read_at(&mut last, len - 1)? == 1 && last[0] == b'\n')
}

/// Whether a record's JSON is an exit record's (a torn one included: it is not a claim either
/// way).
fn is_exit(json: &[u8]) -> bool {
    json.starts_with(b"{\"exit\"")
}

fn check(json: &[u8]) -> String {
    blake3::hash(json).to_hex()[..8].to_string()
}

fn encode(entry: &Entry) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let mut line = format!("{} ", check(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

fn decode(line: &[u8]) -> Option<Entry> {
    let (sum, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') || sum != check(json).as_bytes() {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// A journal opened for appending.
#[derive(Debug)]
pub(crate) struct Writer {
    file: File,
}

/// Whether a claim was this caller's.
#[derive(Debug, PartialEq)]
pub(crate) enum Claimed {
    Now,
    Already(ProcId),
}

impl Writer {
    pub fn open(path: &Path) -> io::Result<Writer> {
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(Writer { file })
    }

    /// Claims `attempt` for `waiter` unless the journal (as `index` reads it) has a claim for
    /// it already, which wins. The claim is not synced here: the waiter syncs it (with
    /// [`Writer::sync`]) once the script has started, off the launch's path.
    pub fn claim(
        &mut self,
        index: &mut Index,
        attempt: &Path,
        waiter: ProcId,
    ) -> io::Result<Claimed> {
        let _lock = Lock::take(&self.file)?;
        let len = self.file.metadata()?.len();
        let fresh_line = index.read_to(&self.file, len)?;
        if let Some(owner) = index.claim(attempt) {
            return Ok(Claimed::Already(owner));
        }
        self.write(
            &Entry::Claim {
                attempt: attempt.to_path_buf(),
                waiter,
            },
            fresh_line,
        )?;
        Ok(Claimed::Now)
    }

    /// Appends `entry` (not synced: see [`Writer::sync`]).
    pub fn append(&mut self, entry: &Entry) -> io::Result<()> {
        let _lock = Lock::take(&self.file)?;
        let len = self.file.metadata()?.len();
        let fresh_line = ends_a_line(&self.file, len)?;
        self.write(entry, fresh_line)
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Appends `entry` under the lock; after a newline when the journal's last line is
    /// unfinished (`fresh_line` false): a record torn by a killed writer must not swallow
    /// this one.
    fn write(&mut self, entry: &Entry, fresh_line: bool) -> io::Result<()> {
        let line = encode(entry)?;
        let out = if fresh_line {
            line
        } else {
            [b"\n".as_slice(), &line].concat()
        };
        self.file.write_all(&out)
    }
}

/// An exclusive `flock` on the journal, let go when dropped (the file outlives it).
struct Lock(std::os::fd::RawFd);

impl Lock {
    fn take(file: &File) -> io::Result<Lock> {
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock(file.as_raw_fd()));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as in `take`; the file is still open.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    fn me() -> ProcId {
        ProcId {
            pid: 7,
            start_time: 9,
        }
    }

    fn exit(code: i32) -> ExitRecord {
        ExitRecord {
            outcome: Outcome::Exited { code },
            started_ms: 1,
            ended_ms: 2,
            child_pid: Some(3),
        }
    }

    #[test]
    fn the_first_claim_wins_and_exit_records_are_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(JOURNAL);
        let a = tmp.path().join("s/1");
        let mut w = Writer::open(&path).unwrap();
        let mut index = Index::default();
        assert_eq!(w.claim(&mut index, &a, me()).unwrap(), Claimed::Now);
        let other = ProcId {
            pid: 8,
            start_time: 1,
        };
        let mut fresh = Index::default();
        assert_eq!(
            Writer::open(&path)
                .unwrap()
                .claim(&mut fresh, &a, other)
                .unwrap(),
            Claimed::Already(me())
        );
        w.append(&Entry::Exit {
            attempt: a.clone(),
            record: exit(4),
        })
        .unwrap();
        index.refresh(&path).unwrap();
        assert_eq!(index.exit(&a), Some(&exit(4)));
        assert_eq!(index.torn(), 0);
        // A waiter's index keeps the claims and passes over the exits.
        let mut waiter = Index::claims_only();
        waiter.refresh(&path).unwrap();
        assert_eq!(waiter.claim(&a), Some(me()));
        assert_eq!(waiter.exit(&a), None);
    }

    #[test]
    fn a_torn_record_is_skipped_and_counted_and_does_not_swallow_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(JOURNAL);
        let (a, b) = (tmp.path().join("s/1"), tmp.path().join("t/1"));
        let mut w = Writer::open(&path).unwrap();
        w.append(&Entry::Claim {
            attempt: a.clone(),
            waiter: me(),
        })
        .unwrap();
        // A writer killed halfway through its record.
        let whole = encode(&Entry::Exit {
            attempt: a.clone(),
            record: exit(0),
        })
        .unwrap();
        append_raw(&path, &whole[..whole.len() / 2]);
        // Read now, the unfinished tail is left for later.
        let mut index = Index::default();
        index.refresh(&path).unwrap();
        assert_eq!((index.claim(&a), index.torn()), (Some(me()), 0));
        w.append(&Entry::Exit {
            attempt: b.clone(),
            record: exit(1),
        })
        .unwrap();
        index.refresh(&path).unwrap();
        assert_eq!(index.exit(&a), None);
        assert_eq!(index.exit(&b), Some(&exit(1)));
        assert_eq!(index.torn(), 1);
        // A claim after another torn record, by a writer whose index had read up to it.
        let c = tmp.path().join("u/1");
        append_raw(&path, &whole[..whole.len() / 3]);
        let mut waiter = Index::claims_only();
        waiter.refresh(&path).unwrap();
        assert_eq!(w.claim(&mut waiter, &c, me()).unwrap(), Claimed::Now);
        index.refresh(&path).unwrap();
        assert_eq!((index.claim(&c), index.torn()), (Some(me()), 2));
    }

    /// Appends `bytes` as a writer killed mid-record leaves them.
    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    }

    #[test]
    fn a_record_whose_check_fails_is_not_believed() {
        let line = encode(&Entry::Exit {
            attempt: "/r/s/1".into(),
            record: exit(0),
        })
        .unwrap();
        let text = String::from_utf8(line)
            .unwrap()
            .replace("\"code\":0", "\"code\":1");
        assert_eq!(decode(text.trim_end().as_bytes()), None);
    }

    #[test]
    fn the_journal_is_in_the_run_folder() {
        assert_eq!(
            path_for(Path::new("/h/runs/r1/train/2")),
            Path::new("/h/runs/r1/.journal")
        );
    }
}
