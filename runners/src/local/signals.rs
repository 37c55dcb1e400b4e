//! A waiter's signals: blocked from its first instruction and taken synchronously (through a
//! signalfd polled with the script's output pipes, or `sigtimedwait`), so that a signal is
//! never lost between two checks and no handler runs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The signals a waiter waits for: its script's end, and requests to stop.
#[derive(Debug)]
pub(crate) struct Signals {
    set: libc::sigset_t,
    /// A signalfd for the blocked signals, so that a wait can also watch the log pipes.
    fd: OwnedFd,
}

/// Signals that ask a waiter to stop its job.
pub(crate) const STOP_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The signal `cancel` sends a waiter: "look at your attempt's `cancel` marker". A waiter runs
/// one attempt after another, so a plain stop signal could reach the wrong one.
pub(crate) const CANCEL_SIGNAL: i32 = libc::SIGUSR1;

/// Every signal a waiter blocks and takes synchronously.
const BLOCKED: [i32; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    CANCEL_SIGNAL,
    libc::SIGCHLD,
];

impl Signals {
    /// Blocks SIGCHLD, the cancel signal and the stop signals in this (single-threaded)
    /// process and resets their dispositions, which an exec inherits when they were ignored.
    /// Scripts get an empty mask back (see `spawn.rs`).
    pub fn block() -> io::Result<Signals> {
        // SAFETY: plain libc calls on a local sigset_t, initialised by sigemptyset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in BLOCKED {
                libc::sigaddset(&mut set, sig);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            for sig in BLOCKED {
                libc::signal(sig, libc::SIG_DFL);
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals {
                set,
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// The signalfd: readable while a blocked signal is pending.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Takes the pending signals through the signalfd (none: an empty list).
    pub fn take(&self) -> Vec<i32> {
        let mut taken = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reads into a local of exactly `size` bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                return taken;
            }
            taken.push(info.ssi_signo as i32);
        }
    }

    /// Takes every pending signal (a waiter between two attempts); whether a stop signal was
    /// among them.
    pub fn drain_stop(&self) -> bool {
        let mut stop = false;
        while let Some(sig) = self.wait(Some(Duration::ZERO)) {
            stop |= STOP_SIGNALS.contains(&sig);
        }
        stop
    }

    /// Waits up to `timeout` (forever if `None`) for one of the blocked signals.
    /// `None` when the time ran out or the wait was interrupted.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<i32> {
        // SAFETY: sigtimedwait/sigwaitinfo on our initialised set; the siginfo is write-only.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            match timeout {
                Some(t) => {
                    let ts = libc::timespec {
                        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
                        tv_nsec: t.subsec_nanos() as libc::c_long,
                    };
                    libc::sigtimedwait(&self.set, &mut info, &ts)
                }
                None => libc::sigwaitinfo(&self.set, &mut info),
            }
        };
        (sig > 0).then_some(sig)
    }
}
