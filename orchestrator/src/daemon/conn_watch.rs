//! Watching one HTTP connection: what it reads and writes ([`Watched`], around the socket),
//! when a request starts and its bodies end ([`Tracked`]), and the [`watchdog`] that says when
//! the connection must be closed:
//!
//! - a request head that has started arriving but is not complete within the header timeout;
//! - a connection with no request in flight and no bytes either way for the idle timeout
//!   (keep-alive);
//! - a request body that stops arriving for the idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const NONE: u64 = u64::MAX;

/// The two timeouts a connection lives by.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// One connection's activity (milliseconds since it opened).
#[derive(Debug)]
pub struct Tracker {
    opened: Instant,
    last_read: AtomicU64,
    last_io: AtomicU64,
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    bodies_open: AtomicUsize,
}

impl Tracker {
    pub fn new() -> Arc<Tracker> {
        Arc::new(Tracker {
            opened: Instant::now(),
            last_read: AtomicU64::new(0),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
            bodies_open: AtomicUsize::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn read_some(&self) {
        let now = self.now();
        self.last_read.store(now, Relaxed);
        self.last_io.store(now, Relaxed);
        if self.in_flight.load(Relaxed) == 0 {
            let _ = self
                .head_since
                .compare_exchange(NONE, now, Relaxed, Relaxed);
        }
    }

    fn wrote_some(&self) {
        self.last_io.store(self.now(), Relaxed);
    }

    /// A request's head arrived: it is in flight until its response body ends (the first
    /// guard); the second guard, for a request with a body, holds until that body ends.
    pub fn begin(self: &Arc<Self>, has_body: bool) -> (InFlight, Option<BodyOpen>) {
        self.head_since.store(NONE, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
        let body = has_body.then(|| {
            self.bodies_open.fetch_add(1, Relaxed);
            self.last_read.store(self.now(), Relaxed);
            BodyOpen(self.clone())
        });
        (InFlight(self.clone()), body)
    }

    /// Why the connection must be closed now, if it must.
    pub fn verdict(&self, t: Timeouts) -> Option<&'static str> {
        let now = self.now();
        let past =
            |since: u64, limit: Duration| now.saturating_sub(since) >= limit.as_millis() as u64;
        if self.bodies_open.load(Relaxed) > 0 && past(self.last_read.load(Relaxed), t.idle) {
            return Some("the request body stopped arriving");
        }
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        match self.head_since.load(Relaxed) {
            NONE if past(self.last_io.load(Relaxed), t.idle) => Some("idle"),
            NONE => None,
            since if past(since, t.header) => Some("the request header did not arrive in time"),
            _ => None,
        }
    }
}

/// Held while a request is in flight.
#[derive(Debug)]
pub struct InFlight(Arc<Tracker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
        self.0.wrote_some();
    }
}

/// Held while a request body is still to be read.
#[derive(Debug)]
pub struct BodyOpen(Arc<Tracker>);

impl Drop for BodyOpen {
    fn drop(&mut self) {
        self.0.bodies_open.fetch_sub(1, Relaxed);
    }
}

/// Waits until the connection must be closed; why.
pub async fn watchdog(tracker: Arc<Tracker>, t: Timeouts) -> &'static str {
    let tick = (t.header.min(t.idle) / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        if let Some(why) = tracker.verdict(t) {
            return why;
        }
    }
}

/// A socket (or TLS stream) whose reads and writes are noted in a [`Tracker`].
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    tracker: Arc<Tracker>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, tracker: Arc<Tracker>) -> Watched<T> {
        Watched { inner, tracker }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.tracker.read_some();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.tracker.wrote_some();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.tracker.wrote_some();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A body that holds a guard until it ends (or is dropped).
#[derive(Debug)]
pub struct Tracked<B, G> {
    inner: B,
    guard: Option<G>,
}

impl<B, G> Tracked<B, G> {
    pub fn new(inner: B, guard: Option<G>) -> Tracked<B, G> {
        Tracked { inner, guard }
    }
}

impl<B: Body + Unpin, G: Unpin> Body for Tracked<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None | Some(Err(_)))) {
            this.guard = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_millis(0),
        idle: Duration::from_secs(3600),
    };

    #[test]
    fn a_started_head_times_out_and_a_request_in_flight_does_not() {
        let t = Tracker::new();
        assert_eq!(t.verdict(T), None, "a new connection is idle, not late");
        t.read_some();
        assert!(t.verdict(T).is_some());
        let (flight, body) = t.begin(false);
        assert!(body.is_none());
        assert_eq!(t.verdict(T), None);
        drop(flight);
        assert_eq!(t.verdict(T), None, "between requests: idle");
        let idle = Timeouts {
            header: T.header,
            idle: Duration::from_millis(0),
        };
        assert_eq!(t.verdict(idle), Some("idle"));
        let (_flight, _body) = t.begin(true);
        assert_eq!(t.verdict(idle), Some("the request body stopped arriving"));
    }
}
