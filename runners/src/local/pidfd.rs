//! Signalling a process that may not be our child, without races against pid
//! reuse: a Linux pidfd, checked against the start time the handle recorded.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::proc_id::{ProcId, ProcStatus};

/// A pidfd for one verified process.
#[derive(Debug)]
pub(crate) struct Pidfd(OwnedFd);

impl Pidfd {
    /// Opens a pidfd for `id`. `Ok(None)` when that process is gone (its pid free or reused).
    /// `Err` with `Unsupported` on kernels without pidfds.
    pub fn open(id: ProcId) -> io::Result<Option<Pidfd>> {
        let pid = libc::pid_t::try_from(id.pid).map_err(io::Error::other)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                Some(libc::ENOSYS) => Err(io::Error::new(io::ErrorKind::Unsupported, err)),
                _ => Err(err),
            };
        }
        // SAFETY: the syscall returned a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // The fd pins whatever process held the pid when it was opened. If /proc now shows the
        // recorded start time, that process is ours: an older one could not have it.
        match ProcStatus::read(id.pid)? {
            Some(status) if status.start_time == id.start_time => Ok(Some(Pidfd(fd))),
            _ => Ok(None),
        }
    }

    /// Sends `signal` to the process; a process that already ended is not an error.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a null siginfo and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
        Ok(())
    }
}

/// Sends `signal` to `id` where pidfds are missing (racy against pid reuse, narrowly).
pub(crate) fn signal_without_pidfd(id: ProcId, signal: i32) -> io::Result<()> {
    if id.is_running() {
        // SAFETY: kill with a pid and a signal number.
        if unsafe { libc::kill(id.pid as libc::pid_t, signal) } < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
    }
    Ok(())
}
