//! Requests to the test servers on 127.0.0.1 (moto, Ray's dashboard) through one reqwest
//! client: the status and the body back.

use std::sync::OnceLock;
use std::time::Duration;

/// The client every request shares (no proxy: the servers are on this machine).
fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .expect("http client")
    })
}

/// One request to `127.0.0.1:port`; its status and body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(std::io::Error::other)?;
    let mut req = client()
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let body = resp.text().map_err(std::io::Error::other)?;
    Ok((status, body))
}
