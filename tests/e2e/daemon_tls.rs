//! `tuna serve --tls-cert --tls-key`: the daemon speaks HTTPS with a certificate made at test
//! time (rcgen, self-signed for 127.0.0.1); a rustls client that trusts it is served, one that
//! does not cannot complete the handshake, plain HTTP gets no answer, and the dashboard's
//! session cookie is `Secure`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tuna_tests::Project;

use crate::daemon_harness::{Serve, TOKEN, exchange, parse_answer};

fn client(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One HTTPS request (Connection: close); (status, head, body) or the TLS/IO error.
fn https(
    config: &Arc<ClientConfig>,
    addr: &str,
    path: &str,
    headers: &str,
) -> Result<(u16, String, String), std::io::Error> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n")
            .as_bytes(),
    )?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // The daemon closes without a TLS close_notify when the connection ends.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(parse_answer(&raw))
}

#[test]
fn the_daemon_speaks_https_with_the_given_certificate() {
    let p = Project::new();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    p.file("cert.pem", &made.cert.pem());
    p.file("key.pem", &made.signing_key.serialize_pem());
    let cert = p.path("cert.pem").display().to_string();
    let key = p.path("key.pem").display().to_string();
    let d = Serve::start_with(&p, &[], &["--tls-cert", &cert, "--tls-key", &key]);
    assert!(d.url.starts_with("https://"), "{}", d.url);

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(made.cert.der().to_vec()))
        .unwrap();
    let trusting = client(roots);
    let (code, _, body) = https(&trusting, &d.addr, "/api/v1/health", "").unwrap();
    assert_eq!(code, 200, "{body}");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let (code, _, body) = https(&trusting, &d.addr, "/api/v1/runs", &auth).unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = https(&trusting, &d.addr, "/api/v1/runs", "").unwrap();
    assert_eq!(code, 401);
    // The dashboard's session cookie is Secure under TLS.
    let (code, head, _) = https(&trusting, &d.addr, &format!("/?token={TOKEN}"), "").unwrap();
    assert_eq!(code, 303, "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");

    // A client that does not trust the certificate gets no answer.
    let stranger = client(RootCertStore::empty());
    assert!(https(&stranger, &d.addr, "/api/v1/health", "").is_err());
    // Nor does plain HTTP.
    let plain = "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (code, _, _) = exchange(TcpStream::connect(&d.addr).unwrap(), plain);
    assert_eq!(code, 0);
}

#[test]
fn a_missing_or_mismatched_certificate_is_refused_at_start() {
    let p = Project::new();
    let one = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    p.file("cert.pem", &one.cert.pem());
    p.file("other-key.pem", &other.signing_key.serialize_pem());
    let cert = p.path("cert.pem").display().to_string();
    let wrong_key = p.path("other-key.pem").display().to_string();
    let missing = p.path("nope.pem").display().to_string();
    for (c, k, says) in [
        (&cert, &missing, "cannot read TLS private key"),
        (&cert, &wrong_key, "do not go together"),
    ] {
        let r = p
            .tuna()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                c,
                "--tls-key",
                k,
            ])
            .env("TUNA_SERVE_TOKENS", TOKEN)
            .output()
            .unwrap();
        let r = tuna_tests::Run::from(r);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains(says), "{}", r.stderr);
    }
    let r = p
        .tuna()
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert", &cert])
        .env("TUNA_SERVE_TOKENS", TOKEN)
        .output()
        .unwrap();
    let r = tuna_tests::Run::from(r);
    assert_eq!(r.code, 2, "--tls-cert alone: {}", r.stderr);
    assert!(r.stderr.contains("--tls-key"), "{}", r.stderr);
}
