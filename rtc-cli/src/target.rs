//! Where the cache lives: the connection flags turned into an rtc cache and into plain redis-rs
//! connections to every server that holds its keys (one, or each master of a cluster).

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use rtc::TaggedCache;

use crate::cli::ConnectionArgs;
use crate::error::CliError;

/// The connection flags, checked.
pub struct Target {
    args: ConnectionArgs,
    timeout: Duration,
}

/// One server holding keys of the namespace, with an address safe to print.
pub struct Node {
    /// `host:port`: never the password.
    pub address: String,
    client: redis::Client,
    timeout: Duration,
}

impl Target {
    /// Checks the flags that need no connection.
    pub fn new(args: ConnectionArgs) -> Result<Self, CliError> {
        if !(args.timeout.is_finite() && args.timeout > 0.0) {
            return Err(CliError::Usage(
                "--timeout must be a number of seconds above zero".into(),
            ));
        }
        if args.namespace.is_empty() {
            return Err(CliError::Usage("--namespace must not be empty".into()));
        }
        let timeout = Duration::from_secs_f64(args.timeout);
        Ok(Self { args, timeout })
    }

    /// The namespace the commands act on.
    pub fn namespace(&self) -> &str {
        &self.args.namespace
    }

    /// True for `--cluster`.
    pub fn is_cluster(&self) -> bool {
        !self.args.cluster.is_empty()
    }

    /// The rtc cache these flags describe. Never connects.
    pub fn cache(&self) -> Result<TaggedCache, CliError> {
        let mut builder = TaggedCache::builder()
            .namespace(&self.args.namespace)
            .response_timeout(self.timeout)
            .connect_timeout(self.timeout)
            .tls_insecure_skip_verify(self.args.tls_insecure);
        builder = if self.args.cluster.is_empty() {
            builder.url(self.url(&self.args.url))
        } else {
            builder.cluster_urls(self.args.cluster.iter().map(|url| self.url(url)))
        };
        if let Some(ca) = &self.args.tls_ca_file {
            builder = builder.tls_ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.args.tls_client_cert, &self.args.tls_client_key) {
            builder = builder.tls_client_cert(cert, key);
        }
        builder
            .build()
            .map_err(|error| CliError::Usage(format!("bad connection settings: {error}")))
    }

    /// The servers the flags name, safe to print: `host:port` of `--url`, or of each
    /// `--cluster` seed.
    pub fn servers(&self) -> String {
        let urls = if self.args.cluster.is_empty() {
            std::slice::from_ref(&self.args.url)
        } else {
            &self.args.cluster[..]
        };
        urls.iter()
            .map(|url| match self.info(url) {
                Ok(info) => address(info.addr()),
                Err(_) => redact(url),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every server that holds keys of the namespace: the `--url` server, or each master of the
    /// `--cluster` (asked of the first seed that answers).
    pub fn nodes(&self) -> Result<Vec<Node>, CliError> {
        if self.args.cluster.is_empty() {
            return Ok(vec![self.node(self.info(&self.args.url)?)?]);
        }
        let seeds = self
            .args
            .cluster
            .iter()
            .map(|url| self.info(url))
            .collect::<Result<Vec<_>, _>>()?;
        let mut last_error = None;
        for seed in seeds {
            let node = self.node(seed.clone())?;
            let masters = node.connect().and_then(|mut connection| {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query::<String>(&mut connection)
                    .map_err(|error| CliError::from_redis(&node.address, &error))
            });
            match masters {
                Ok(listing) => {
                    return cluster_masters(&listing)
                        .into_iter()
                        .map(|(host, port)| {
                            self.node(seed.clone().set_addr(moved(seed.addr(), host, port)))
                        })
                        .collect();
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("clap requires at least one --cluster URL"))
    }

    /// `url` with TLS forced on when `--tls` was given.
    fn url(&self, url: &str) -> String {
        match url.strip_prefix("redis://") {
            Some(rest) if self.args.tls => format!("rediss://{rest}"),
            _ => url.to_owned(),
        }
    }

    fn info(&self, url: &str) -> Result<ConnectionInfo, CliError> {
        let info = self
            .url(url)
            .as_str()
            .into_connection_info()
            .map_err(|error| {
                CliError::Usage(format!(
                    "bad URL '{}': {}",
                    redact(url),
                    error.detail().unwrap_or(&error.to_string())
                ))
            })?;
        match info.addr().clone() {
            ConnectionAddr::TcpTls {
                host,
                port,
                tls_params,
                ..
            } if self.args.tls_insecure => Ok(info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params,
            })),
            _ if self.args.tls_insecure => Err(CliError::Usage(
                "--tls-insecure without TLS (use rediss:// or --tls)".into(),
            )),
            _ => Ok(info),
        }
    }

    fn node(&self, info: ConnectionInfo) -> Result<Node, CliError> {
        let address = address(info.addr());
        let client = self
            .client(info)
            .map_err(|error| CliError::from_redis(&address, &error))?;
        Ok(Node {
            address,
            client,
            timeout: self.timeout,
        })
    }

    #[cfg(feature = "tls")]
    fn client(&self, info: ConnectionInfo) -> redis::RedisResult<redis::Client> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|error| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cannot read a TLS file",
                    format!("{}: {error}", path.display()),
                ))
            })
        };
        let root_cert = self.args.tls_ca_file.as_deref().map(read).transpose()?;
        let client_tls = match (&self.args.tls_client_cert, &self.args.tls_client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            _ => None,
        };
        if root_cert.is_none() && client_tls.is_none() {
            return redis::Client::open(info);
        }
        redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )
    }

    #[cfg(not(feature = "tls"))]
    fn client(&self, info: ConnectionInfo) -> redis::RedisResult<redis::Client> {
        if self.args.tls_ca_file.is_some() || self.args.tls_client_cert.is_some() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "this rtc was built without the `tls` feature",
            )));
        }
        redis::Client::open(info)
    }
}

impl Node {
    /// A connection that has answered `PING` (and so accepted the credentials).
    pub fn connect(&self) -> Result<redis::Connection, CliError> {
        let failed = |error: redis::RedisError| CliError::from_redis(&self.address, &error);
        let mut connection = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(failed)?;
        connection
            .set_read_timeout(Some(self.timeout))
            .map_err(failed)?;
        connection
            .set_write_timeout(Some(self.timeout))
            .map_err(failed)?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map_err(failed)?;
        Ok(connection)
    }
}

/// `host:port` of an address, for messages.
fn address(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

/// `addr` moved to another host and port, keeping its TLS settings.
fn moved(addr: &ConnectionAddr, host: String, port: u16) -> ConnectionAddr {
    match addr.clone() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        },
        _ => ConnectionAddr::Tcp(host, port),
    }
}

/// Host and port of every master that is not failing and serves slots, from a `CLUSTER NODES`
/// reply (`<id> <ip:port@cport[,hostname]> <flags> <primary> <ping> <pong> <epoch> <link>
/// <slots>...` per line). A master without slots holds no keys of its own: right after a cluster
/// is made, a node about to become a replica can still be listed so, with its primary's keys.
fn cluster_masters(listing: &str) -> Vec<(String, u16)> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            // After the flags: primary, ping, pong, epoch and link state, then the slots.
            fields.nth(4)?;
            fields.next()?;
            let is_master = flags.split(',').any(|flag| flag == "master");
            let failing = flags
                .split(',')
                .any(|flag| flag == "fail" || flag == "fail?");
            if !is_master || failing {
                return None;
            }
            let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// `url` with the password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}://{user}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_and_keeps_the_rest() {
        assert_eq!(
            redact("redis://ada:s3cret@host:6380/2"),
            "redis://ada:***@host:6380/2"
        );
        assert_eq!(redact("rediss://:s3cret@host"), "rediss://:***@host");
        assert_eq!(redact("redis://s3cret@host/0"), "redis://***@host/0");
        assert_eq!(redact("redis://host:6379/0"), "redis://host:6379/0");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn cluster_masters_skips_replicas_failing_masters_and_masters_without_slots() {
        let listing = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,node-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 master - 0 0 4 connected
";
        assert_eq!(
            cluster_masters(listing),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
    }
}
