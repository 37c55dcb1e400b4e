//! Connections (issue #10, item 7): half-sent requests and idle keep-alive connections are
//! closed after `tuna serve`'s header and idle timeouts, and one client address holds at most
//! `--max-conns-per-client` connections (more are closed at once) while other clients are
//! still served.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tuna_tests::{Project, wait_until};

use crate::daemon_harness::{Serve, TOKEN, exchange};

/// A connection that sends half a request head and then nothing.
fn half_sent(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Whether the daemon closed the connection (reads what it sent, without waiting).
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

fn count_closed(conns: &mut [TcpStream]) -> usize {
    conns.iter_mut().map(closed).filter(|c| *c).count()
}

/// A connection to `addr` from the loopback address `from` (another client).
fn connect_from(from: &str, addr: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    let dst: SocketAddr = addr.parse().unwrap();
    sock.connect(&dst.into()).unwrap();
    sock.into()
}

fn health_from(from: &str, addr: &str) -> u16 {
    let req = format!("GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(connect_from(from, addr), &req).0
}

#[test]
fn half_sent_and_idle_connections_are_closed_after_the_timeouts() {
    let p = Project::new();
    let d = Serve::start_with(
        &p,
        &[],
        &[
            "--header-timeout",
            "2s",
            "--idle-timeout",
            "3s",
            "--max-conns-per-client",
            "500",
        ],
    );
    // A keep-alive connection that was served once and then says nothing.
    let mut idle = TcpStream::connect(&d.addr).unwrap();
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("\"ok\":true") {
        let n = idle.read(&mut buf).expect("the health answer");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    idle.set_nonblocking(true).unwrap();
    assert!(
        !closed(&mut idle),
        "a keep-alive connection stays open a while"
    );

    // A request whose body stops arriving (100 bytes announced, 12 sent).
    let mut stalled = TcpStream::connect(&d.addr).unwrap();
    let head = format!(
        "POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"workflow\""
    );
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.set_nonblocking(true).unwrap();

    let start = Instant::now();
    let mut conns: Vec<TcpStream> = (0..200).map(|_| half_sent(&d.addr)).collect();
    // The daemon still serves while they hang.
    assert_eq!(health_from("127.0.0.1", &d.addr), 200);
    wait_until(
        Duration::from_secs(20),
        "the half-sent requests to be closed",
        || count_closed(&mut conns) == conns.len(),
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "closed before the header timeout: {:?}",
        start.elapsed()
    );
    wait_until(
        Duration::from_secs(20),
        "the idle keep-alive connection to be closed",
        || closed(&mut idle),
    );
    wait_until(
        Duration::from_secs(20),
        "the request with a stalled body to be closed",
        || closed(&mut stalled),
    );
}

#[test]
fn a_client_over_its_connection_cap_is_refused_while_others_are_served() {
    let p = Project::new();
    // Long timeouts: only the cap closes connections here.
    let d = Serve::start_with(&p, &[], &["--header-timeout", "5m", "--idle-timeout", "5m"]);
    // The attacker fills its cap (64 by default), in order: the daemon accepts them first.
    let mut held: Vec<TcpStream> = (0..64).map(|_| half_sent(&d.addr)).collect();
    let mut extra: Vec<TcpStream> = (0..136).map(|_| half_sent(&d.addr)).collect();
    wait_until(
        Duration::from_secs(20),
        "connections over the cap to be closed",
        || count_closed(&mut extra) == extra.len(),
    );
    assert_eq!(
        count_closed(&mut held),
        0,
        "connections within the cap stay"
    );
    // Another client address is served meanwhile; the attacker's address is not.
    assert_eq!(health_from("127.0.0.2", &d.addr), 200);
    assert_eq!(
        health_from("127.0.0.1", &d.addr),
        0,
        "refused: closed at once"
    );
    // Once the attacker lets go, its address is served again.
    drop(held);
    wait_until(Duration::from_secs(20), "the cap to free up", || {
        health_from("127.0.0.1", &d.addr) == 200
    });
    // Connections left hanging do not keep the daemon from stopping on SIGTERM.
    let _hanging: Vec<TcpStream> = (0..32).map(|_| half_sent(&d.addr)).collect();
    let mut d = d;
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_until(Duration::from_secs(30), "tuna serve to stop", || {
        d.child.try_wait().unwrap().is_some()
    });
}
