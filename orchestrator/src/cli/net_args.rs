//! `tuna serve`'s connection options: the header and idle timeouts, the cap on open
//! connections per client address (see [`crate::daemon::ConnLimits`]), and optional TLS.

use crate::daemon::{ConnLimits, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_PER_CLIENT};

#[derive(Debug, Clone, clap::Args)]
pub struct NetArgs {
    /// How long a request's header may take to arrive once it has started (e.g. 10s); the
    /// connection is closed after that [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::workflow::parse_duration)]
    pub header_timeout: Option<std::time::Duration>,
    /// How long a connection may stay open with no request in flight and nothing sent either
    /// way (keep-alive), and how long a request body may stop arriving [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = crate::workflow::parse_duration)]
    pub idle_timeout: Option<std::time::Duration>,
    /// The most connections one client address may hold open; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PER_CLIENT as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns_per_client: u32,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl NetArgs {
    /// The TLS acceptor of --tls-cert/--tls-key; none without them.
    pub fn tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => crate::daemon::tls_acceptor(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    pub fn limits(&self) -> ConnLimits {
        ConnLimits {
            header_timeout: self.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT),
            idle_timeout: self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            per_client: self.max_conns_per_client as usize,
        }
    }
}
