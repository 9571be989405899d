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

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, RedisError,
    RedisResult, Role, ServerErrorKind, Value,
};

use super::commands::Round;
use super::inband::InBandFlow;
use super::server::ServerConnector;
use super::{PipelinedReads, Timeouts};
use crate::settings::SentinelSettings;
use crate::settings::TlsMaterial;

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
    /// Timeouts of the async connections a lookup opens.
    async_config: AsyncConnectionConfig,
    /// Counts the reads each primary's data connections pipeline.
    pipelined: PipelinedReads,
}

impl SentinelConnector {
    pub(super) fn new(
        settings: &SentinelSettings,
        tls: &TlsMaterial,
        timeouts: Timeouts,
        pipelined: PipelinedReads,
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
            async_config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeouts.connect))
                .set_response_timeout(Some(timeouts.socket)),
            pipelined,
        })
    }

    pub(super) fn query(&self, round: &Round) -> RedisResult<Vec<Value>> {
        let primary = self.primary()?;
        let result = primary.query(round);
        self.check(&primary, &result);
        result
    }

    /// Steps `flow` on the primary's data connection, as one server does
    /// ([`ServerConnector::tracked`]).
    pub(super) fn tracked<F: InBandFlow>(&self, flow: F) -> RedisResult<F::Output> {
        let primary = self.primary()?;
        let result = primary.tracked(flow);
        self.check(&primary, &result);
        result
    }

    /// Async twin of [`SentinelConnector::tracked`].
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future, which a hit moves"
    )]
    pub(super) fn tracked_async<'a, F: InBandFlow + Send + 'a>(
        &'a self,
        flow: F,
        runtime: tokio::runtime::Id,
    ) -> impl Future<Output = RedisResult<F::Output>> + Send + 'a {
        async move {
            let primary = self.primary_async().await?;
            let result = primary.tracked_async(flow, runtime).await;
            self.check(&primary, &result);
            result
        }
    }

    /// The primary known, or found through the sentinels (blocking).
    fn primary(&self) -> RedisResult<Arc<ServerConnector>> {
        match self.current() {
            Some(primary) => Ok(primary),
            None => Ok(self.remember(self.resolve()?)),
        }
    }

    pub(super) async fn query_async(
        &self,
        round: &Round,
        runtime: tokio::runtime::Id,
    ) -> RedisResult<Vec<Value>> {
        let primary = self.primary_async().await?;
        let result = primary.query_async(round, runtime).await;
        self.check(&primary, &result);
        result
    }

    /// The primary known, or found through the sentinels (the lookup's async driver).
    async fn primary_async(&self) -> RedisResult<Arc<ServerConnector>> {
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        // Boxed: the lookup's future (sentinel connections and all) is rarely needed, and would
        // otherwise make every read's future, and each one awaiting it, larger. One command per
        // node, each on a connection of its own.
        Box::pin(async {
            let mut lookup = PrimaryLookup::new(self);
            let mut reply = None;
            let found = loop {
                if let Some(found) = lookup.advance(reply.take()) {
                    break found;
                }
                let (node, command) = lookup.request();
                reply = Some(match self.connect_async(node).await {
                    Ok(mut connection) => command.query_async(&mut connection).await,
                    Err(error) => Err(error),
                });
            };
            Ok(self.remember(found?))
        })
        .await
    }

    fn current(&self) -> Option<Arc<ServerConnector>> {
        self.slot().clone()
    }

    /// Keeps the primary just found, unless a concurrent call found one first (then that one is
    /// used, so that all calls share one pool).
    fn remember(&self, client: Client) -> Arc<ServerConnector> {
        let mut slot = self.slot();
        slot.get_or_insert_with(|| {
            // A new primary, new connections: what the old one's tracked is not carried over.
            let tracked = self
                .tls
                .client(super::resp3(client.get_connection_info()))
                .ok();
            Arc::new(ServerConnector::new(
                client,
                tracked,
                self.timeouts,
                self.pipelined.clone(),
            ))
        })
        .clone()
    }

    /// Forgets `primary` (and with it every connection to it) after a failure that says it is
    /// gone or no longer the primary. A primary found since by another call stays.
    fn check<T>(&self, primary: &Arc<ServerConnector>, result: &RedisResult<T>) {
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

    /// The lookup's blocking driver: one command per node, each on a connection of its own.
    fn resolve(&self) -> RedisResult<Client> {
        let mut lookup = PrimaryLookup::new(self);
        let mut reply = None;
        loop {
            if let Some(found) = lookup.advance(reply.take()) {
                return found;
            }
            let (node, command) = lookup.request();
            reply = Some(
                self.connect(node)
                    .and_then(|mut connection| command.query(&mut connection)),
            );
        }
    }

    /// The sentinels' indexes, the one that answered last first (the Sentinel client
    /// guidelines), so that a sentinel that is down costs each lookup nothing once another has
    /// answered.
    fn in_turn(&self) -> Vec<usize> {
        let first = self.answering.load(Ordering::Relaxed);
        let count = self.sentinels.len();
        (0..count).map(|offset| (first + offset) % count).collect()
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

    fn connect_async<'a>(
        &'a self,
        client: &'a Client,
    ) -> impl Future<Output = RedisResult<redis::aio::MultiplexedConnection>> + Send + 'a {
        client.get_multiplexed_async_connection_with_config(&self.async_config)
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

/// The lookup of the primary, written once for both drivers: ask each sentinel in turn for
/// `SENTINEL GET-MASTER-ADDR-BY-NAME <service>`, then check with `ROLE` that the node it names
/// is a primary; the first that does wins.
struct PrimaryLookup<'s> {
    connector: &'s SentinelConnector,
    /// Sentinel indexes still to ask, in order.
    order: std::vec::IntoIter<usize>,
    /// The sentinel being asked, or whose answer is being checked.
    sentinel: usize,
    /// The node that sentinel named, while its `ROLE` is asked.
    candidate: Option<Client>,
    last_error: Option<RedisError>,
}

impl<'s> PrimaryLookup<'s> {
    fn new(connector: &'s SentinelConnector) -> Self {
        Self {
            order: connector.in_turn().into_iter(),
            connector,
            sentinel: 0,
            candidate: None,
            last_error: None,
        }
    }

    /// Moves on with the reply to the last request (`None` at first): `Some` when the lookup
    /// is over, else send [`PrimaryLookup::request`].
    fn advance(&mut self, reply: Option<RedisResult<Value>>) -> Option<RedisResult<Client>> {
        let Some(reply) = reply else {
            return self.next_sentinel();
        };
        let connector = self.connector;
        match self.candidate.take() {
            None => {
                let named = reply.and_then(|value| Ok(redis::from_redis_value(value)?));
                match named.and_then(|address| connector.client_for(address)) {
                    Ok(client) => {
                        self.candidate = Some(client);
                        None
                    }
                    Err(error) => self.failed(error),
                }
            }
            Some(client) => {
                let role = reply.and_then(|value| Ok(redis::from_redis_value::<Role>(value)?));
                match role {
                    Ok(role) if is_primary(&role) => {
                        connector.answering.store(self.sentinel, Ordering::Relaxed);
                        Some(Ok(client))
                    }
                    Ok(_) => self.failed(not_primary()),
                    Err(error) => self.failed(error),
                }
            }
        }
    }

    /// The node to send a command to now, and the command.
    fn request(&self) -> (&Client, Cmd) {
        match &self.candidate {
            Some(client) => (client, role()),
            None => (
                &self.connector.sentinels[self.sentinel],
                self.connector.lookup(),
            ),
        }
    }

    fn failed(&mut self, error: RedisError) -> Option<RedisResult<Client>> {
        self.last_error = Some(error);
        self.next_sentinel()
    }

    fn next_sentinel(&mut self) -> Option<RedisResult<Client>> {
        match self.order.next() {
            Some(index) => {
                self.sentinel = index;
                None
            }
            None => Some(Err(self.connector.no_primary(self.last_error.take()))),
        }
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
        connector_of(&["redis://127.0.0.1:26379"])
    }

    fn connector_of(sentinels: &[&str]) -> SentinelConnector {
        let primary = ConnectionAddr::Tcp("127.0.0.1".to_owned(), 6379)
            .into_connection_info()
            .unwrap()
            .set_redis_settings(
                redis::RedisConnectionInfo::default()
                    .set_db(3)
                    .set_password("hunter2"),
            );
        let settings = SentinelSettings {
            sentinels: sentinels
                .iter()
                .map(|url| url.into_connection_info().unwrap())
                .collect(),
            service: "cache".to_owned(),
            primary,
        };
        let timeouts = Timeouts {
            socket: Duration::from_millis(100),
            connect: Duration::from_millis(100),
        };
        SentinelConnector::new(
            &settings,
            &TlsMaterial::default(),
            timeouts,
            PipelinedReads::default(),
        )
        .unwrap()
    }

    fn reply(resp: &str) -> RedisResult<Value> {
        Ok(redis::parse_redis_value(resp.as_bytes()).unwrap())
    }

    fn named(port: u16) -> RedisResult<Value> {
        reply(&format!("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n{port}\r\n"))
    }

    const PRIMARY: &str = "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";
    const REPLICA: &str =
        "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6390\r\n$9\r\nconnected\r\n:0\r\n";

    fn port_of(client: &Client) -> u16 {
        match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(_, port) => *port,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lookup_asks_a_sentinel_then_checks_the_role_of_the_node_it_names() {
        let connector = connector_of(&["redis://127.0.0.1:26379", "redis://127.0.0.1:26380"]);
        let mut lookup = PrimaryLookup::new(&connector);
        assert!(lookup.advance(None).is_none());
        let (node, command) = lookup.request();
        assert_eq!(port_of(node), 26379);
        assert_eq!(
            command.args_iter().count(),
            3,
            "SENTINEL GET-MASTER-ADDR-BY-NAME cache"
        );
        assert!(lookup.advance(Some(named(6390))).is_none());
        assert_eq!(
            port_of(lookup.request().0),
            6390,
            "ROLE goes to the node named"
        );
        let found = lookup.advance(Some(reply(PRIMARY))).unwrap().unwrap();
        assert_eq!(port_of(&found), 6390);
    }

    #[test]
    fn a_failing_sentinel_or_a_replica_named_moves_on_to_the_next_sentinel() {
        let connector = connector_of(&["redis://127.0.0.1:26379", "redis://127.0.0.1:26380"]);
        let mut lookup = PrimaryLookup::new(&connector);
        assert!(lookup.advance(None).is_none());
        assert!(lookup.advance(Some(Err(not_primary()))).is_none());
        assert_eq!(
            port_of(lookup.request().0),
            26380,
            "the second sentinel is asked"
        );
        assert!(lookup.advance(Some(named(6391))).is_none());
        let result = lookup.advance(Some(reply(REPLICA))).unwrap();
        let error = result.unwrap_err();
        assert!(super::super::is_connection_trouble(&error), "{error}");

        // The next lookup starts with the sentinel that answered last.
        let mut lookup = PrimaryLookup::new(&connector);
        assert!(lookup.advance(None).is_none());
        assert!(lookup.advance(Some(named(6392))).is_none());
        assert!(lookup.advance(Some(reply(PRIMARY))).unwrap().is_ok());
        assert_eq!(connector.answering.load(Ordering::Relaxed), 0);
        let connector_second =
            connector_of(&["redis://127.0.0.1:26379", "redis://127.0.0.1:26380"]);
        connector_second.answering.store(1, Ordering::Relaxed);
        let mut lookup = PrimaryLookup::new(&connector_second);
        assert!(lookup.advance(None).is_none());
        assert_eq!(port_of(lookup.request().0), 26380);
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
