//! The daemon's accept loop (in place of `axum::serve`), which bounds what a client can hold
//! open: at most [`ConnLimits::per_client`] connections per client address (more are closed as
//! soon as they are accepted), and on each connection the header and idle timeouts of
//! [`super::conn_watch`]. On shutdown it stops accepting, lets each connection finish the
//! request it is serving, and waits at most [`DRAIN`] for them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;

use super::conn_watch::{Timeouts, Tracked, Tracker, Watched, watchdog};

/// How long a request head may take to arrive, once it has started.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit with no request and no bytes either way.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most connections one client address may hold open.
pub const DEFAULT_PER_CLIENT: usize = 64;
/// How long shutdown waits for open connections.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub per_client: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            per_client: DEFAULT_PER_CLIENT,
        }
    }
}

impl ConnLimits {
    fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: self.header_timeout,
            idle: self.idle_timeout,
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let clients = Arc::new(Clients::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors, say: wait a little instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = clients.take(peer.ip(), limits.per_client) else {
            tracing::debug!(client = %peer.ip(), "over the per-client connection cap; closed");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = connection(tcp, router.clone(), limits, tls.clone(), stop_rx.clone());
        tokio::spawn(async move {
            conn.await;
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
    drop(stop_rx);
    let _ = tokio::time::timeout(DRAIN, stop_tx.closed()).await;
}

async fn connection(
    tcp: TcpStream,
    router: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let tracker = Tracker::new();
    let io = Watched::new(tcp, tracker.clone());
    let Some(tls) = tls else {
        return serve_io(io, tracker, router, limits, stop).await;
    };
    match tokio::time::timeout(limits.header_timeout, tls.accept(io)).await {
        Ok(Ok(stream)) => serve_io(stream, tracker, router, limits, stop).await,
        Ok(Err(e)) => tracing::debug!("TLS handshake: {e}"),
        Err(_) => tracing::debug!("TLS handshake: not done within the header timeout"),
    }
}

/// Serves HTTP/1.1 on one connection until it ends, the watchdog closes it, or shutdown.
async fn serve_io<I>(
    io: I,
    tracker: Arc<Tracker>,
    router: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let t = tracker.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut router = router.clone();
        let (flight, body) = t.begin(!req.body().is_end_stream());
        async move {
            let req = req.map(|b| Body::new(Tracked::new(b, body)));
            let resp = match router.call(req).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            Ok::<_, Infallible>(resp.map(|b| Body::new(Tracked::new(b, Some(flight)))))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let dog = watchdog(tracker, limits.timeouts());
    tokio::pin!(dog);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection: {e}");
                }
                return;
            }
            why = &mut dog => {
                tracing::debug!("connection closed: {why}");
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct Clients {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Clients {
    /// A slot for one more connection from `ip`, if it has fewer than `cap` open.
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            clients: self.clone(),
            ip,
        })
    }
}

/// One open connection of a client; given back when dropped.
#[derive(Debug)]
struct Slot {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_address_has_its_own_cap() {
        let c = Arc::new(Clients::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let one = c.take(a, 2).unwrap();
        let two = c.take(mapped, 2).unwrap();
        assert!(c.take(a, 2).is_none());
        let other = c.take(b, 2);
        assert!(other.is_some());
        drop(one);
        assert!(c.take(a, 2).is_some());
        drop((two, other));
        assert!(c.open.lock().unwrap().is_empty());
    }
}
