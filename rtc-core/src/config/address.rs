//! Where the builder was told entries live, and how that becomes a [`Storage`]: URLs parsed,
//! credentials, database and TLS applied.

use std::fmt;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::backend::redis::tls;
use crate::error::ConfigError;
use crate::settings::{SentinelSettings, Storage, TlsOptions};

/// The storage chosen: the last storage setter called wins.
#[derive(Clone)]
pub(super) enum Address {
    /// `host()`/`port()`, or neither: the default server.
    HostPort {
        host: Option<String>,
        port: Option<u16>,
    },
    Url(String),
    Client(Box<ConnectionInfo>),
    Cluster(Vec<String>),
    ClusterClient(Box<redis::cluster::ClusterClient>),
    Sentinel(Vec<String>, String),
    Memory,
}

impl Default for Address {
    fn default() -> Self {
        Address::HostPort {
            host: None,
            port: None,
        }
    }
}

/// Only what cannot hold a secret: URLs may carry passwords.
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::HostPort { host, port } => {
                write!(f, "HostPort({host:?}, {port:?})")
            }
            Address::Url(_) => f.write_str("Url(<set>)"),
            Address::Client(info) => write!(f, "Client({})", info.addr()),
            Address::Cluster(urls) => write!(f, "Cluster({} seeds)", urls.len()),
            Address::ClusterClient(_) => f.write_str("ClusterClient(..)"),
            Address::Sentinel(urls, service) => {
                write!(f, "Sentinel({} sentinels, {service:?})", urls.len())
            }
            Address::Memory => f.write_str("Memory"),
        }
    }
}

/// What applies to whichever Redis storage is chosen.
#[derive(Clone, Default)]
pub(super) struct Connection {
    pub db: Option<i64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    pub tls_options: TlsOptions,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_options", &self.tls_options)
            .finish()
    }
}

impl Address {
    /// `host()` after `port()` keeps the port; after any other storage, starts afresh.
    pub(super) fn with_host(self, host: String) -> Self {
        let port = match self {
            Address::HostPort { port, .. } => port,
            _ => None,
        };
        Address::HostPort {
            host: Some(host),
            port,
        }
    }

    /// `port()` after `host()` keeps the host; after any other storage, starts afresh.
    pub(super) fn with_port(self, port: u16) -> Self {
        let host = match self {
            Address::HostPort { host, .. } => host,
            _ => None,
        };
        Address::HostPort {
            host,
            port: Some(port),
        }
    }

    /// The storage this address names, with `connection` applied.
    pub(super) fn storage(&self, connection: &Connection) -> Result<Storage, ConfigError> {
        let storage = match self {
            Address::Memory => Storage::Memory,
            Address::HostPort { host, port } => {
                let host = host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
                let info = ConnectionAddr::Tcp(host, port.unwrap_or(6379))
                    .into_connection_info()
                    .map_err(invalid_url)?;
                Storage::Redis(Box::new(connection.server(info)?))
            }
            Address::Url(url) => Storage::Redis(Box::new(connection.server(parse_url(url)?)?)),
            Address::Client(info) => Storage::Redis(Box::new(connection.server((**info).clone())?)),
            Address::Cluster(urls) => Storage::Cluster(connection.cluster_nodes(urls)?),
            Address::ClusterClient(client) => {
                connection.leaves_the_client_alone()?;
                Storage::ClusterClient(client.clone())
            }
            Address::Sentinel(urls, service) => {
                Storage::Sentinel(Box::new(connection.sentinel(urls, service)?))
            }
        };
        let tls_requested = connection.tls_options.requested();
        if tls_requested && !storage.uses_tls() && !matches!(storage, Storage::Memory) {
            return Err(ConfigError::Contradictory(
                "tls_* settings given, but the connection is not TLS (use rediss:// or tls(true))",
            ));
        }
        Ok(storage)
    }
}

impl Connection {
    /// A cluster client given by the application is used as it is: settings that would
    /// change its connections are refused rather than silently ignored.
    fn leaves_the_client_alone(&self) -> Result<(), ConfigError> {
        let refines = self.db.is_some() || self.username.is_some() || self.password.is_some();
        if refines || self.tls || self.tls_options.requested() {
            return Err(ConfigError::Contradictory(
                "cluster_client() is used as it is: set its credentials and TLS on the ClusterClient, not with db()/username()/password()/tls*()",
            ));
        }
        Ok(())
    }

    /// `redis` with the `username()`, `password()` and `db()` given, if any.
    fn refine(&self, mut redis: RedisConnectionInfo) -> RedisConnectionInfo {
        if let Some(username) = &self.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        if let Some(db) = self.db {
            redis = redis.set_db(db);
        }
        redis
    }

    /// One server's connection: `info` refined, with TLS as asked.
    fn server(&self, info: ConnectionInfo) -> Result<ConnectionInfo, ConfigError> {
        let redis = self.refine(info.redis_settings().clone());
        tls::secure(
            info.set_redis_settings(redis),
            self.tls,
            self.tls_options.insecure,
        )
    }

    fn cluster_nodes(&self, urls: &[String]) -> Result<Vec<ConnectionInfo>, ConfigError> {
        if urls.is_empty() {
            return Err(ConfigError::Invalid(
                "cluster_urls() needs at least one seed node",
            ));
        }
        if self.db.is_some_and(|db| db != 0) {
            return Err(ConfigError::Invalid(
                "a Redis Cluster has only database 0; drop db()",
            ));
        }
        let nodes = urls
            .iter()
            .map(|url| self.server(parse_url(url)?))
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.iter().any(|node| node.redis_settings().db() != 0) {
            return Err(ConfigError::Invalid(
                "a Redis Cluster has only database 0; drop the /db of its URLs",
            ));
        }
        Ok(nodes)
    }

    fn sentinel(&self, urls: &[String], service: &str) -> Result<SentinelSettings, ConfigError> {
        if urls.is_empty() {
            return Err(ConfigError::Invalid(
                "sentinel() needs at least one sentinel URL",
            ));
        }
        if service.is_empty() {
            return Err(ConfigError::Invalid(
                "sentinel() needs the service name the sentinels monitor the primary under",
            ));
        }
        let parsed = urls
            .iter()
            .map(|url| parse_url(url))
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.iter().any(|info| info.redis_settings().db() != 0) {
            return Err(ConfigError::Invalid(
                "sentinel URLs name no database; set the primary's with db()",
            ));
        }
        let tls_given = parsed
            .iter()
            .any(|info| matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
        let tls = self.tls || tls_given;
        let insecure = self.tls_options.insecure;
        let sentinels = parsed
            .into_iter()
            .map(|info| tls::secure(info, tls, insecure))
            .collect::<Result<Vec<_>, _>>()?;
        // The address is a placeholder: each lookup replaces it with the sentinels' answer.
        let placeholder = ConnectionAddr::Tcp("127.0.0.1".to_owned(), 6379)
            .into_connection_info()
            .map_err(invalid_url)?;
        let primary = self.refine(RedisConnectionInfo::default());
        Ok(SentinelSettings {
            sentinels,
            service: service.to_owned(),
            primary: tls::secure(placeholder.set_redis_settings(primary), tls, insecure)?,
        })
    }
}

/// A URL as redis-rs reads it, with the schemes rtc supports.
fn parse_url(url: &str) -> Result<ConnectionInfo, ConfigError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("redis" | "redis+unix" | "unix") => {}
        Some("rediss") if cfg!(feature = "tls") => {}
        Some("rediss") => return Err(ConfigError::TlsUnavailable),
        Some(other) => {
            return Err(ConfigError::InvalidUrl {
                reason: format!(
                    "unsupported scheme `{other}://`; use redis://, rediss:// or redis+unix://"
                ),
                source: None,
            })
        }
        None => {
            return Err(ConfigError::InvalidUrl {
                reason: "no scheme; expected redis://host:port/db".to_owned(),
                source: None,
            })
        }
    }
    url.into_connection_info().map_err(invalid_url)
}

/// redis-rs's reason for refusing an address, kept as the error's source.
fn invalid_url(error: redis::RedisError) -> ConfigError {
    ConfigError::InvalidUrl {
        reason: error.to_string(),
        source: Some(Box::new(error)),
    }
}
