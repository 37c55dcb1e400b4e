//! One host's connection, shared by every job of the runner: opened on first use, dropped when
//! an operation finds it broken, reopened by the next one. Marks the host down when it stays
//! unreachable for `lost_after`; a down host is probed again now and then (a fresh connect,
//! with a growing pause between tries), so a host that comes back takes jobs again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::SshConfig;
use super::conn::{Conn, OpError};
use super::error::ConnectError;

/// Why an operation on a host did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    /// The connection could not be opened for a reason that will not pass by itself.
    #[error(transparent)]
    Refused(ConnectError),
    /// The host did not answer for `lost_after`.
    #[error("{0}")]
    Down(String),
    /// The remote side failed the operation.
    #[error("{0}")]
    Fatal(String),
}

pub(crate) struct Host {
    pub cfg: SshConfig,
    conn: Mutex<Option<Conn>>,
    down: AtomicBool,
    /// When a down host may be probed next, and the pause after that one.
    probe: Mutex<(Instant, Duration)>,
    probing: AtomicBool,
    /// How kept outputs are hashed on the host, once found out (`None` inside: they cannot be).
    pub hasher: Mutex<Option<Option<String>>>,
}

/// The first pause before a down host is probed again, and the longest.
const PROBE_FIRST: Duration = Duration::from_millis(500);
const PROBE_MAX: Duration = Duration::from_secs(30);

impl Host {
    pub fn new(cfg: SshConfig) -> Host {
        Host {
            cfg,
            conn: Mutex::new(None),
            down: AtomicBool::new(false),
            probe: Mutex::new((Instant::now(), PROBE_FIRST)),
            probing: AtomicBool::new(false),
            hasher: Mutex::new(None),
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn mark_down(&self) {
        if !self.down.swap(true, Ordering::Relaxed) {
            *self.probe.lock().unwrap_or_else(|p| p.into_inner()) =
                (Instant::now() + PROBE_FIRST, PROBE_FIRST);
        }
    }

    /// Whether a down host is due for a probe; claims it (one probe at a time).
    pub fn probe_due(&self) -> bool {
        if !self.is_down() {
            return false;
        }
        let (at, _) = *self.probe.lock().unwrap_or_else(|p| p.into_inner());
        Instant::now() >= at && !self.probing.swap(true, Ordering::AcqRel)
    }

    /// One fresh try to reach a down host (blocks for up to the connect timeout). Clears
    /// `down` if it answers; otherwise waits longer before the next probe.
    pub fn probe(&self) {
        let answered = self.once(&mut |c| c.exec("true").map(|_| ())).is_ok();
        if answered {
            if self.down.swap(false, Ordering::Relaxed) {
                tracing::info!(host = %self.cfg.host_entry(), "the host answers again");
            }
        } else {
            let mut p = self.probe.lock().unwrap_or_else(|p| p.into_inner());
            let pause = (p.1 * 2).min(PROBE_MAX);
            *p = (Instant::now() + p.1, pause);
        }
        self.probing.store(false, Ordering::Release);
    }

    /// Runs `op` once the host answers, trying for up to about `limit` (a new connection is
    /// given at most `limit` to open), without marking the host down when it does not (a
    /// look, not a job: `Down` then only says it did not answer).
    pub fn trying_for<T>(
        &self,
        limit: Duration,
        mut op: impl FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, HostError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let left = limit.saturating_sub(start.elapsed()).max(pause);
            match self.once_within(&mut op, Some(left)) {
                Ok(v) => return Ok(v),
                Err(Err(e)) => return Err(e),
                Err(Ok(reason)) => {
                    if start.elapsed() + pause >= limit {
                        return Err(HostError::Down(format!(
                            "host {} of runner `{}` does not answer ({reason})",
                            self.cfg.host_entry(),
                            self.cfg.name
                        )));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Conn>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` on the connection (opening it first if needed). Returns `Err(Ok(reason))`
    /// when the transport failed (the connection is dropped; trying again may work).
    fn once<T>(
        &self,
        op: &mut impl FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, Result<String, HostError>> {
        self.once_within(op, None)
    }

    /// [`Host::once`], opening a missing connection within `open_limit` when given (connect
    /// and handshake; the connection then gets the runner's own I/O timeout).
    fn once_within<T>(
        &self,
        op: &mut impl FnMut(&mut Conn) -> Result<T, OpError>,
        open_limit: Option<Duration>,
    ) -> Result<T, Result<String, HostError>> {
        let mut guard = self.lock();
        if guard.is_none() {
            let opened = match open_limit {
                None => Conn::open(&self.cfg),
                Some(limit) => {
                    let mut quick = self.cfg.clone();
                    quick.connect_timeout = quick.connect_timeout.min(limit);
                    quick.io_timeout = quick.io_timeout.min(limit);
                    Conn::open(&quick).map(|mut c| {
                        c.set_io_timeout(self.cfg.io_timeout);
                        c
                    })
                }
            };
            match opened {
                Ok(c) => *guard = Some(c),
                Err(e) if e.transient() => return Err(Ok(e.to_string())),
                Err(e) => return Err(Err(HostError::Refused(e))),
            }
        }
        let conn = guard.as_mut().expect("connected above");
        match op(conn) {
            Ok(v) => Ok(v),
            Err(OpError::Conn(reason)) => {
                *guard = None;
                Err(Ok(reason))
            }
            Err(OpError::Fatal(reason)) => Err(Err(HostError::Fatal(reason))),
        }
    }

    /// Runs `op`, reconnecting and retrying while the host does not answer, for up to
    /// `lost_after` (then the host is marked down). `op` must be safe to repeat.
    pub fn retrying<T>(
        &self,
        mut op: impl FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, HostError> {
        self.retrying_for(self.cfg.lost_after, &mut op)
    }

    /// Like [`Host::retrying`], giving up after `limit`; a host already down gets one try.
    pub fn retrying_for<T>(
        &self,
        limit: Duration,
        op: &mut impl FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, HostError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.once(op) {
                Ok(v) => {
                    if self.down.swap(false, Ordering::Relaxed) {
                        tracing::info!(host = %self.cfg.host_entry(), "the host answers again");
                    }
                    return Ok(v);
                }
                Err(Err(e)) => return Err(e),
                Err(Ok(reason)) => {
                    if self.is_down() || start.elapsed() >= limit {
                        self.mark_down();
                        return Err(HostError::Down(format!(
                            "host {} of runner `{}` stopped answering ({reason})",
                            self.cfg.host_entry(),
                            self.cfg.name
                        )));
                    }
                    tracing::debug!(host = %self.cfg.host_entry(), %reason, "reconnecting");
                    std::thread::sleep(pause.min(limit.saturating_sub(start.elapsed())));
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
