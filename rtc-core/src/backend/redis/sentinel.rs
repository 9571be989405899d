//! Redis behind Sentinel: the sentinels name the current primary, which is then used as one
//! server (a pool of sync connections, a `ConnectionManager` per runtime). When the primary
//! fails (connection trouble, or `READONLY` from a node that was demoted), it is forgotten with
//! every connection to it, and the next call asks the sentinels again.
//!
//! The lookup follows the Sentinel client guidelines: ask each sentinel in turn for
//! `SENTINEL GET-MASTER-ADDR-BY-NAME <service>`, then check with `ROLE` that the node it names
//! is a primary. It is done here rather than with redis-rs's `sentinel` module because that
//! module sets no read timeout on its sync connections (a sentinel that accepts connections
//! but never answers would block a call for good) and uses fixed timeouts for its async ones;
//! here every step has the cache's connect and socket timeouts.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, RedisError,
    RedisResult, Role, ServerErrorKind, Value,
};

use super::commands::Round;
use super::server::ServerConnector;
use super::tls::TlsMaterial;
use super::Timeouts;
use crate::config::SentinelSettings;

pub(crate) struct SentinelConnector {
    /// One client per sentinel, in the order given.
    sentinels: Vec<Client>,
    service: String,
    /// What connections to the primary use, but its address: db, credentials, TLS.
    primary_template: ConnectionInfo,
    tls: TlsMaterial,
    timeouts: Timeouts,
    /// The sentinel that named the primary last: the next lookup asks it first.
    answering: AtomicUsize,
    /// The primary the sentinels named last, with its connections; `None` until the next call
    /// asks them.
    primary: Mutex<Option<Arc<ServerConnector>>>,
}

impl SentinelConnector {
    pub(super) fn new(
        settings: &SentinelSettings,
        tls: &TlsMaterial,
        timeouts: Timeouts,
    ) -> RedisResult<Self> {
        let sentinels = settings
            .sentinels
            .iter()
            .map(|info| tls.client(info.clone()))
            .collect::<RedisResult<_>>()?;
        Ok(Self {
            sentinels,
            service: settings.service.clone(),
            primary_template: settings.primary.clone(),
            tls: tls.clone(),
            timeouts,
            answering: AtomicUsize::new(0),
            primary: Mutex::new(None),
        })
    }

    pub(super) fn query(&self, round: &Round) -> RedisResult<Vec<Value>> {
        let primary = match self.current() {
            Some(primary) => primary,
            None => self.remember(self.resolve()?),
        };
        let result = primary.query(round);
        self.check(&primary, &result);
        result
    }

    pub(super) async fn query_async(
        &self,
        round: &Round,
        runtime: tokio::runtime::Id,
    ) -> RedisResult<Vec<Value>> {
        let primary = match self.current() {
            Some(primary) => primary,
            None => self.remember(self.resolve_async().await?),
        };
        let result = primary.query_async(round, runtime).await;
        self.check(&primary, &result);
        result
    }

    fn current(&self) -> Option<Arc<ServerConnector>> {
        self.slot().clone()
    }

    /// Keeps the primary just found, unless a concurrent call found one first (then that one is
    /// used, so that all calls share one pool).
    fn remember(&self, client: Client) -> Arc<ServerConnector> {
        let mut slot = self.slot();
        slot.get_or_insert_with(|| Arc::new(ServerConnector::new(client, self.timeouts)))
            .clone()
    }

    /// Forgets `primary` (and with it every connection to it) after a failure that says it is
    /// gone or no longer the primary. A primary found since by another call stays.
    fn check(&self, primary: &Arc<ServerConnector>, result: &RedisResult<Vec<Value>>) {
        let Err(error) = result else { return };
        if !(super::is_connection_trouble(error) || is_demoted(error)) {
            return;
        }
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|kept| Arc::ptr_eq(kept, primary)) {
            *slot = None;
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<ServerConnector>>> {
        self.primary.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks each sentinel in turn for the primary, starting with the one that answered last;
    /// the first that names a node answering `ROLE` as a primary wins.
    fn resolve(&self) -> RedisResult<Client> {
        let mut last_error = None;
        for (index, sentinel) in self.in_turn() {
            let found = self.ask(sentinel).and_then(|address| {
                let client = self.client_for(address)?;
                let role: Role = role().query(&mut self.connect(&client)?)?;
                is_primary(&role).then_some(client).ok_or_else(not_primary)
            });
            match found {
                Ok(client) => return Ok(self.answered(index, client)),
                Err(error) => last_error = Some(error),
            }
        }
        Err(self.no_primary(last_error))
    }

    /// Async twin of [`SentinelConnector::resolve`].
    async fn resolve_async(&self) -> RedisResult<Client> {
        let mut last_error = None;
        for (index, sentinel) in self.in_turn() {
            let found = async {
                let address = self.ask_async(sentinel).await?;
                let client = self.client_for(address)?;
                let mut connection = self.connect_async(&client).await?;
                let role: Role = role().query_async(&mut connection).await?;
                is_primary(&role).then_some(client).ok_or_else(not_primary)
            };
            match found.await {
                Ok(client) => return Ok(self.answered(index, client)),
                Err(error) => last_error = Some(error),
            }
        }
        Err(self.no_primary(last_error))
    }

    /// The sentinels with their indexes, the one that answered last first (the Sentinel
    /// client guidelines), so that a sentinel that is down costs each lookup nothing once
    /// another has answered.
    fn in_turn(&self) -> impl Iterator<Item = (usize, &Client)> {
        let first = self.answering.load(Ordering::Relaxed);
        let count = self.sentinels.len();
        (0..count).map(move |offset| {
            let index = (first + offset) % count;
            (index, &self.sentinels[index])
        })
    }

    fn answered(&self, index: usize, client: Client) -> Client {
        self.answering.store(index, Ordering::Relaxed);
        client
    }

    fn ask(&self, sentinel: &Client) -> RedisResult<Option<(String, u16)>> {
        self.lookup().query(&mut self.connect(sentinel)?)
    }

    async fn ask_async(&self, sentinel: &Client) -> RedisResult<Option<(String, u16)>> {
        let mut connection = self.connect_async(sentinel).await?;
        self.lookup().query_async(&mut connection).await
    }

    fn lookup(&self) -> Cmd {
        let mut lookup = redis::cmd("SENTINEL");
        lookup.arg("GET-MASTER-ADDR-BY-NAME").arg(&self.service);
        lookup
    }

    fn connect(&self, client: &Client) -> RedisResult<redis::Connection> {
        let connection = client.get_connection_with_timeout(self.timeouts.connect)?;
        connection.set_read_timeout(Some(self.timeouts.socket))?;
        connection.set_write_timeout(Some(self.timeouts.socket))?;
        Ok(connection)
    }

    async fn connect_async(
        &self,
        client: &Client,
    ) -> RedisResult<redis::aio::MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.socket));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// A client for the node a sentinel named (`None`: it knows no such service), with the
    /// primary's db, credentials and TLS.
    fn client_for(&self, address: Option<(String, u16)>) -> RedisResult<Client> {
        let (host, port) = address.ok_or_else(|| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "the sentinel monitors no primary of this name",
                self.service.clone(),
            ))
        })?;
        let addr = match self.primary_template.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        self.tls
            .client(self.primary_template.clone().set_addr(addr))
    }

    /// What a failed lookup reports: connection trouble, so that rtc backs off and asks again
    /// later, with the last sentinel's reason.
    fn no_primary(&self, last_error: Option<RedisError>) -> RedisError {
        let reason = last_error.map_or_else(|| "no sentinel given".to_owned(), |e| e.to_string());
        RedisError::from(io::Error::new(
            io::ErrorKind::NotConnected,
            format!(
                "no sentinel named a reachable primary for `{}` (last: {reason})",
                self.service
            ),
        ))
    }
}

/// `ROLE`, sent to the node a sentinel named.
fn role() -> Cmd {
    redis::cmd("ROLE")
}

fn is_primary(role: &Role) -> bool {
    matches!(role, Role::Primary { .. })
}

fn not_primary() -> RedisError {
    RedisError::from((
        ErrorKind::InvalidClientConfig,
        "the node the sentinel named is not a primary (a failover is under way)",
    ))
}

/// `READONLY`: the node was a primary and is a replica now.
fn is_demoted(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redis::IntoConnectionInfo as _;

    use super::*;

    fn connector() -> SentinelConnector {
        let primary = ConnectionAddr::Tcp("127.0.0.1".to_owned(), 6379)
            .into_connection_info()
            .unwrap()
            .set_redis_settings(
                redis::RedisConnectionInfo::default()
                    .set_db(3)
                    .set_password("hunter2"),
            );
        let settings = SentinelSettings {
            sentinels: vec!["redis://127.0.0.1:26379".into_connection_info().unwrap()],
            service: "cache".to_owned(),
            primary,
        };
        let timeouts = Timeouts {
            socket: Duration::from_millis(100),
            connect: Duration::from_millis(100),
        };
        SentinelConnector::new(&settings, &TlsMaterial::default(), timeouts).unwrap()
    }

    #[test]
    fn the_primary_named_gets_the_configured_db_and_credentials() {
        let client = connector()
            .client_for(Some(("10.0.0.9".to_owned(), 6390)))
            .unwrap();
        let info = client.get_connection_info();
        assert_eq!(
            info.addr(),
            &ConnectionAddr::Tcp("10.0.0.9".to_owned(), 6390)
        );
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(info.redis_settings().password(), Some("hunter2"));
    }

    #[test]
    fn a_sentinel_that_knows_no_such_service_names_no_primary() {
        let error = connector().client_for(None).unwrap_err();
        assert!(error.to_string().contains("cache"), "{error}");
    }

    #[test]
    fn finding_no_primary_counts_as_connection_trouble() {
        let error = connector().no_primary(Some(not_primary()));
        assert!(super::super::is_connection_trouble(&error));
        assert!(error.to_string().contains("not a primary"), "{error}");
    }

    #[test]
    fn readonly_says_the_primary_was_demoted() {
        let reply =
            redis::parse_redis_value(b"-READONLY You can't write against a read only replica.\r\n")
                .unwrap();
        let error = reply.extract_error().unwrap_err();
        assert!(is_demoted(&error));
        assert!(!is_demoted(&not_primary()));
    }
}
