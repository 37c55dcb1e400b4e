//! A process named durably: its pid plus its start time, so that a reused pid is never taken
//! for the process that once had it.

use std::io;

use serde::{Deserialize, Serialize};

/// A pid and the process's start time (clock ticks since boot, field 22 of `/proc/PID/stat`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ProcId {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcId {
    /// This process.
    pub fn current() -> io::Result<ProcId> {
        let pid = std::process::id();
        let status = ProcStatus::read(pid)?
            .ok_or_else(|| io::Error::other("no /proc entry for this process"))?;
        Ok(ProcId {
            pid,
            start_time: status.start_time,
        })
    }

    /// The process now holding `pid`, if any.
    pub fn of(pid: u32) -> io::Result<Option<ProcId>> {
        Ok(ProcStatus::read(pid)?.map(|s| ProcId {
            pid,
            start_time: s.start_time,
        }))
    }

    /// Whether this very process still runs (a zombie does not).
    pub fn is_running(&self) -> bool {
        matches!(ProcStatus::read(self.pid), Ok(Some(s)) if s.start_time == self.start_time && s.state != 'Z')
    }
}

/// Sends `signal` to every process of the session `sid` (a session leader's pid). A pid that
/// names a live session cannot be reused, so this reaches only that session's members.
pub(crate) fn signal_session(sid: u32, signal: i32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // The leader itself is gone or is not ours to kill.
        if pid != sid
            && matches!(ProcStatus::read(pid), Ok(Some(s)) if s.session as i64 == sid as i64)
        {
            // SAFETY: kill with a pid and a signal number.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }
}

/// The few fields of `/proc/PID/stat` the runner needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcStatus {
    pub state: char,
    pub session: i32,
    pub start_time: u64,
}

impl ProcStatus {
    /// `None` when there is no such process.
    pub fn read(pid: u32) -> io::Result<Option<ProcStatus>> {
        let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(text) => text,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Self::parse(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable /proc/{pid}/stat"),
            )
        })
    }

    fn parse(text: &str) -> Option<ProcStatus> {
        // The command name (field 2) is in parentheses and may hold anything, so count the
        // fields after its closing parenthesis: field 3 (state) comes first.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let session = fields.nth(6 - 4)?.parse().ok()?;
        let start_time = fields.nth(22 - 7)?.parse().ok()?;
        Some(ProcStatus {
            state,
            session,
            start_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let s = ProcStatus::parse(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.session, 4242);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn current_process_is_running() {
        let me = ProcId::current().unwrap();
        assert!(me.is_running());
        assert!(
            !ProcId {
                start_time: me.start_time + 1,
                ..me
            }
            .is_running()
        );
    }
}
