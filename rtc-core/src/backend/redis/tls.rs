//! TLS on redis-rs's connections: an address switched to TLS, and clients made with the
//! certificates the settings loaded (`settings::tls`).
//!
//! Built with the `tls` feature, rtc speaks TLS through rustls (with the *ring* provider) and
//! trusts the system's roots unless a CA is given. Without it, asking for TLS is a
//! [`ConfigError::TlsUnavailable`].

use redis::{ConnectionAddr, ConnectionInfo};

use crate::error::ConfigError;
use crate::settings::TlsMaterial;

/// `info` with TLS turned on (when `tls` is true or it already was) and, for `insecure`,
/// certificate checks turned off.
pub(crate) fn secure(
    info: ConnectionInfo,
    tls: bool,
    insecure: bool,
) -> Result<ConnectionInfo, ConfigError> {
    let (host, port, already) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (host.clone(), *port, false),
        ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
        _ if tls || insecure => {
            return Err(ConfigError::Contradictory(
                "TLS settings given for a unix socket",
            ))
        }
        _ => return Ok(info),
    };
    if !(tls || already) {
        if insecure {
            return Err(ConfigError::Contradictory(
                "tls_insecure_skip_verify(true) without TLS (use rediss:// or tls(true))",
            ));
        }
        return Ok(info);
    }
    if !cfg!(feature = "tls") {
        return Err(ConfigError::TlsUnavailable);
    }
    let insecure = insecure || matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. });
    Ok(info.set_addr(ConnectionAddr::TcpTls {
        host,
        port,
        insecure,
        tls_params: None,
    }))
}

impl TlsMaterial {
    /// A client for one server, with these certificates.
    pub(crate) fn client(&self, info: ConnectionInfo) -> redis::RedisResult<redis::Client> {
        #[cfg(feature = "tls")]
        if let Some(certificates) = self.certificates() {
            return redis::Client::build_with_tls(info, certificates);
        }
        redis::Client::open(info)
    }

    /// A cluster client builder for these seed nodes, with these certificates.
    pub(crate) fn cluster_builder(
        &self,
        nodes: Vec<ConnectionInfo>,
    ) -> redis::cluster::ClusterClientBuilder {
        let builder = redis::cluster::ClusterClientBuilder::new(nodes);
        #[cfg(feature = "tls")]
        if let Some(certificates) = self.certificates() {
            return builder.certs(certificates);
        }
        builder
    }
}

#[cfg(feature = "tls")]
impl TlsMaterial {
    /// The certificates for redis-rs, `None` when the system's roots and no client
    /// certificate will do.
    pub(crate) fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.root_cert.is_none() && self.client.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.client.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: self.root_cert.clone(),
        })
    }
}
