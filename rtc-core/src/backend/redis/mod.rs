//! Redis, one server, a primary found through Sentinel, or a cluster: sends each operation's
//! [`Round`], with back-off after connection failures.

mod backoff;
mod batch;
mod cluster;
mod commands;
mod connections;
mod inband;
mod runtime;
mod sentinel;
mod server;
pub(crate) mod tls;
mod tracking;

use std::future::Future;
use std::time::Duration;

use futures_util::future::Either;
use redis::{ConnectionInfo, RedisError, RedisResult, Value};

use self::backoff::Backoff;
use self::cluster::ClusterConnector;
use self::commands::{Round, Topology};
#[cfg(not(feature = "simulation"))]
use self::inband::TrackedSet;
#[cfg(feature = "simulation")]
pub(crate) use self::inband::{plan_set, PlainSet, SetPlan, TrackedSet};
use self::inband::{Entries, InBandFlow, SetSent, TrackedRead, TrackedReadFlow, TrackedSetFlow};
use self::runtime::IoRuntime;
use self::sentinel::SentinelConnector;
use self::server::ServerConnector;
#[cfg(feature = "simulation")]
pub(crate) use self::tracking::simulated as tracking_simulated;
pub(crate) use self::tracking::Tracker;
use self::tracking::{FillConnection, Source};
use super::PingFailure;
use crate::engine::{Operation, Reply};
use crate::error::BackendError;
use crate::error::ConfigError;
use crate::settings::{Settings, Storage};

/// How often a cluster request is retried after a redirection or a lost node, before it counts
/// as failed (and the call goes on without the cache).
const CLUSTER_RETRIES: u32 = 3;

/// The count behind [`CacheStats::pipelined_reads`](crate::CacheStats::pipelined_reads), shared
/// by a store's connections.
pub(crate) type PipelinedReads = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// Timeouts every connection is opened with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub socket: Duration,
    pub connect: Duration,
}

/// Where rounds are sent.
enum Connector {
    Server(Box<ServerConnector>),
    Sentinel(Box<SentinelConnector>),
    Cluster(Box<ClusterConnector>),
}

pub(crate) struct RedisStore {
    connector: Connector,
    backoff: Backoff,
    /// Where the near cache's tracker lends the fills their connections (one server's, the
    /// primary's behind Sentinel, or each master's of a cluster).
    fills: std::sync::Arc<FillConnection>,
    /// How long a tombstone lives in this namespace: a `set` sent as one plain `SET` lives at
    /// least as long ([`inband::TrackedSetFlow`]).
    tombstone_lifetime: Duration,
    /// Reads sent in a pipeline with other callers' reads ([`CacheStats::pipelined_reads`]).
    ///
    /// [`CacheStats::pipelined_reads`]: crate::CacheStats::pipelined_reads
    pipelined: PipelinedReads,
}

impl RedisStore {
    /// A client for the server, sentinels or cluster the settings name. Nothing connects yet.
    pub(crate) fn open(settings: &Settings) -> Result<Self, ConfigError> {
        let timeouts = Timeouts {
            socket: settings.socket_timeout,
            connect: settings.connect_timeout,
        };
        let pipelined = PipelinedReads::default();
        let invalid = |error: RedisError| ConfigError::InvalidUrl {
            reason: error.to_string(),
            source: Some(Box::new(error)),
        };
        let connector = match &settings.storage {
            Storage::Cluster(nodes) => {
                let client = settings
                    .tls
                    .cluster_builder(nodes.clone())
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.socket)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(invalid)?;
                Connector::Cluster(Box::new(ClusterConnector::new(client, timeouts)))
            }
            Storage::ClusterClient(client) => Connector::Cluster(Box::new(ClusterConnector::new(
                (**client).clone(),
                timeouts,
            ))),
            Storage::Redis(info) => {
                let client = settings.tls.client((**info).clone()).map_err(invalid)?;
                let tracked = settings.tls.client(resp3(info)).map_err(invalid)?;
                Connector::Server(Box::new(ServerConnector::new(
                    client,
                    Some(tracked),
                    timeouts,
                    pipelined.clone(),
                )))
            }
            Storage::Sentinel(sentinel) => {
                let connector =
                    SentinelConnector::new(sentinel, &settings.tls, timeouts, pipelined.clone())
                        .map_err(invalid)?;
                Connector::Sentinel(Box::new(connector))
            }
            Storage::Disabled | Storage::Memory => {
                return Err(ConfigError::Invalid("not a Redis storage"))
            }
        };
        Ok(Self {
            connector,
            backoff: Backoff::default(),
            fills: std::sync::Arc::default(),
            tombstone_lifetime: crate::format::tombstone_lifetime(settings.default_lifetime),
            pipelined,
        })
    }

    /// Reads sent so far in a pipeline with other callers' reads.
    pub(crate) fn pipelined_reads(&self) -> u64 {
        self.pipelined.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.connector, Connector::Cluster(_))
    }

    /// The round of commands for `operation`; `Skipped` while the back-off pauses Redis.
    fn round(&self, operation: Operation<'_>) -> Result<Round, BackendError> {
        self.allowed()?;
        let topology = match self.connector {
            Connector::Server(_) | Connector::Sentinel(_) => Topology::Standalone,
            Connector::Cluster(_) => Topology::Cluster,
        };
        Round::of(topology, operation)
    }

    /// What reads entries on connections that track tags in-band: one server, or the primary
    /// behind Sentinel (`None`: a cluster, which reads every tag).
    fn reader(&self) -> Option<Reader<'_>> {
        match &self.connector {
            Connector::Server(server) => Some(Reader::Server(server)),
            Connector::Sentinel(sentinel) => Some(Reader::Sentinel(sentinel)),
            Connector::Cluster(_) => None,
        }
    }

    /// `Skipped` while the back-off pauses Redis.
    fn allowed(&self) -> Result<(), BackendError> {
        match self.backoff.allows() {
            true => Ok(()),
            false => Err(BackendError::Skipped),
        }
    }

    /// The round of `operation` when it is a near fill (a read of one entry that asks how long
    /// its keys have to live), in full, to send on the fills' connections so that Redis tracks
    /// every key it reads for the near cache: on one server or the primary behind Sentinel
    /// after one `CLIENT CACHING YES`, on a cluster each key on its slot's master (`None`: not a
    /// fill, or Redis paused by the back-off).
    fn near_fill(&self, operation: Operation<'_>) -> Option<Round> {
        if !matches!(operation, Operation::Read { expiry: true, .. }) {
            return None;
        }
        self.round(operation).ok()
    }

    /// The reply of a near fill's read on the fills' connections, or (none lent, or a failure
    /// on one) the same read without asking the times to live, to send on a data connection so
    /// that its reply is not kept near (Redis does not track those keys for this process's
    /// tracker).
    fn filled<'o>(
        &self,
        operation: Operation<'o>,
        round: &Round,
        sent: Option<RedisResult<Vec<Value>>>,
    ) -> Result<Result<Reply, BackendError>, Operation<'o>> {
        match sent {
            Some(Ok(replies)) => Ok(self.received(round, Ok(replies))),
            Some(Err(error)) => {
                // The tracker learns of its connections' trouble on its own; the call goes on.
                tracing::debug!(%error, "rtc: a near fill's read on the fills' connections failed");
                Err(unkept(operation))
            }
            None => Err(unkept(operation)),
        }
    }

    /// Sends `operation` on a pooled connection and reads the reply.
    pub(crate) fn execute(&self, operation: Operation<'_>) -> Result<Reply, BackendError> {
        let operation = match self.near_fill(operation) {
            Some(round) => {
                let sent = self
                    .fills
                    .send(&round.commands)
                    .map(futures_executor::block_on);
                match self.filled(operation, &round, sent) {
                    Ok(reply) => return reply,
                    Err(unkept) => unkept,
                }
            }
            None => operation,
        };
        if let (Some(read), Some(reader)) = (tracked_read(operation), self.reader()) {
            self.allowed()?;
            let sent = reader.tracked(TrackedReadFlow::new(&read));
            return self.received_with(sent, |answered| inband::reply(&read, answered));
        }
        if let (Some(set), Some(reader)) = (self.tracked_set(operation), self.reader()) {
            self.allowed()?;
            let sent = reader.tracked(TrackedSetFlow::new(set, operation));
            if let Some(reply) = self.set_sent(sent) {
                return reply;
            }
        }
        let round = self.round(operation)?;
        let query = |round: &Round| match &self.connector {
            Connector::Server(server) => server.query(round),
            Connector::Sentinel(sentinel) => sentinel.query(round),
            Connector::Cluster(cluster) => cluster.query(round),
        };
        let mut sent = query(&round);
        if let Some(load) = round.script_load(&sent) {
            sent = query(&load).and_then(|_| query(&round));
        }
        self.received(&round, sent)
    }

    /// Sends `operation` on this runtime's multiplexed connection and reads the reply (on rtc's
    /// own runtime's connection when this one lacks a driver: [`runtime`]).
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future, which a hit moves"
    )]
    pub(crate) fn execute_async<'a>(
        &'a self,
        operation: Operation<'a>,
    ) -> impl Future<Output = Result<Reply, BackendError>> + Send + 'a {
        async move {
            let operation = match self.near_fill(operation) {
                Some(round) => {
                    // Boxed with its round: a fill is rare beside a hit, and would make every
                    // read's future larger.
                    let (round, sent) = Box::pin(async move {
                        let sent = match self.fills.send(&round.commands) {
                            Some(sending) => Some(sending.await),
                            None => None,
                        };
                        (round, sent)
                    })
                    .await;
                    match self.filled(operation, &round, sent) {
                        Ok(reply) => return reply,
                        Err(unkept) => unkept,
                    }
                }
                None => operation,
            };
            // A read of entries on one server (or the primary behind Sentinel) goes to its data
            // connection, which may answer it without reading the tags; the whole read's round is
            // built only if it is sent.
            if let (Some(read), Some(reader)) = (tracked_read(operation), self.reader()) {
                self.allowed()?;
                let runtime = IoRuntime::current()?;
                let flow = TrackedReadFlow::new(&read);
                // A server on the caller's runtime (a hit's usual way) is awaited in place;
                // behind Sentinel, or on rtc's own runtime, the read is boxed, so that their
                // larger futures do not make every hit's future larger (a hit moves it).
                let sent = match (&reader, runtime.is_callers()) {
                    (Reader::Server(server), true) => server.tracked_async(flow, runtime.id).await,
                    _ => Box::pin(runtime.drive(reader.tracked_async(flow, runtime.id))).await,
                };
                return self.received_with(sent, |answered| inband::reply(&read, answered));
            }
            if let (Some(set), Some(reader)) = (self.tracked_set(operation), self.reader()) {
                self.allowed()?;
                let runtime = IoRuntime::current()?;
                // Boxed: a write is rare beside a hit, and would make every read's future larger.
                let flow = TrackedSetFlow::new(set, operation);
                let sent = Box::pin(runtime.drive(reader.tracked_async(flow, runtime.id))).await;
                if let Some(reply) = self.set_sent(sent) {
                    return reply;
                }
            }
            let round = self.round(operation)?;
            let runtime = IoRuntime::current()?;
            let id = runtime.id;
            // Boxed: its futures (a cluster's fan-out, a script loaded and sent again) are larger
            // than a read's, and every decorated call's future holds one of the two: unboxed, a
            // hit would carry and copy 400 bytes it never uses.
            Box::pin(runtime.drive(async {
                let mut sent = self.query_async(&round, id).await;
                if let Some(load) = round.script_load(&sent) {
                    sent = match self.query_async(&load, id).await {
                        Ok(_) => self.query_async(&round, id).await,
                        Err(error) => Err(error),
                    };
                }
                self.received(&round, sent)
            }))
            .await
        }
    }

    /// Sends a round on the server's, the primary's or the cluster's async connection.
    fn query_async<'a>(
        &'a self,
        round: &'a Round,
        runtime: tokio::runtime::Id,
    ) -> impl Future<Output = RedisResult<Vec<Value>>> + Send + 'a {
        match &self.connector {
            Connector::Server(server) => Either::Left(server.query_async(round, runtime)),
            Connector::Sentinel(sentinel) => {
                Either::Right(Either::Left(sentinel.query_async(round, runtime)))
            }
            Connector::Cluster(cluster) => {
                Either::Right(Either::Right(cluster.query_async(round, runtime)))
            }
        }
    }

    /// Sends one `PING` (to every primary of a cluster, to the primary behind Sentinel) and
    /// waits for the answer. The back-off is neither asked nor told: a health check always
    /// tries, and its result changes nothing for the calls around it.
    pub(crate) fn ping(&self) -> RedisResult<()> {
        let round = Round::ping();
        match &self.connector {
            Connector::Server(server) => server.query(&round),
            Connector::Sentinel(sentinel) => sentinel.query(&round),
            Connector::Cluster(cluster) => cluster.query(&round),
        }
        .map(drop)
    }

    /// Async twin of [`RedisStore::ping`], on this runtime's connection.
    pub(crate) async fn ping_async(&self) -> Result<(), PingFailure> {
        let runtime = IoRuntime::current().map_err(|_| PingFailure::NoRuntime)?;
        let round = Round::ping();
        runtime
            .drive(self.query_async(&round, runtime.id))
            .await
            .map(drop)
            .map_err(PingFailure::Redis)
    }

    /// Turns what a round's commands returned into a reply, and keeps the back-off up to date.
    fn received(
        &self,
        round: &Round,
        sent: RedisResult<Vec<Value>>,
    ) -> Result<Reply, BackendError> {
        self.received_with(sent, |values| round.reply(values))
    }

    /// [`RedisStore::received`] of what `read` makes a reply of.
    fn received_with<T>(
        &self,
        sent: RedisResult<T>,
        read: impl FnOnce(T) -> Result<Reply, BackendError>,
    ) -> Result<Reply, BackendError> {
        match sent {
            Ok(sent) => {
                self.backoff.succeeded();
                read(sent)
            }
            Err(error) => Err(self.failure(error)),
        }
    }

    /// What a failed round trip is to the caller, the back-off told when the server could not
    /// be reached.
    fn failure(&self, error: RedisError) -> BackendError {
        if is_connection_trouble(&error) {
            let pause = self.backoff.failed();
            return BackendError::Unreachable { error, pause };
        }
        BackendError::Redis(error)
    }
}

/// Starts the near cache's tracking on the server, cluster or primary the settings name (whose
/// `store` it is): of what the fills read, on one server, the primary behind Sentinel or each
/// master of a cluster (the tracker lends them their connections through the store), and of
/// every key under `prefixes` on replicas.
pub(crate) fn track(
    settings: &Settings,
    store: Option<&RedisStore>,
    near: &std::sync::Arc<crate::near::NearCache>,
    prefixes: Vec<String>,
) -> Result<Tracker, ConfigError> {
    let fills = store.map(|store| std::sync::Arc::clone(&store.fills));
    let source = match &settings.storage {
        Storage::Redis(info) => {
            let client =
                settings
                    .tls
                    .client(resp3(info))
                    .map_err(|error| ConfigError::InvalidUrl {
                        reason: error.to_string(),
                        source: Some(Box::new(error)),
                    })?;
            Source::Server(client)
        }
        Storage::Cluster(seeds) => Source::Cluster {
            seeds: seeds.iter().map(resp3).collect(),
            tls: settings.tls.clone(),
        },
        Storage::Sentinel(sentinel) => Source::Sentinel {
            sentinels: sentinel.sentinels.clone(),
            service: sentinel.service.clone(),
            primary: resp3(&sentinel.primary),
            tls: settings.tls.clone(),
        },
        Storage::ClusterClient(_) => {
            return Err(ConfigError::Contradictory(
                "the near cache tracks every node of a cluster from its seed URLs, which a redis-rs ClusterClient does not tell: use cluster_urls() with near_cache()",
            ))
        }
        Storage::Memory | Storage::Disabled => {
            return Err(ConfigError::Invalid(
                "the near cache tracks a Redis server, cluster or primary behind sentinels",
            ))
        }
    };
    Tracker::start(
        source,
        fills,
        prefixes,
        near,
        settings.socket_timeout,
        settings.connect_timeout,
    )
    .map_err(|_| ConfigError::Invalid("the near cache's tracking thread could not start"))
}

/// The connectors whose connections track tags in-band.
enum Reader<'a> {
    Server(&'a ServerConnector),
    Sentinel(&'a SentinelConnector),
}

impl Reader<'_> {
    /// Steps `flow` on a data connection that tracks tags in-band.
    fn tracked<F: InBandFlow>(&self, flow: F) -> RedisResult<F::Output> {
        match self {
            Reader::Server(server) => server.tracked(flow),
            Reader::Sentinel(sentinel) => sentinel.tracked(flow),
        }
    }

    /// Async twin of [`Reader::tracked`].
    fn tracked_async<'a, F: InBandFlow + Send + 'a>(
        &'a self,
        flow: F,
        runtime: tokio::runtime::Id,
    ) -> impl Future<Output = RedisResult<F::Output>> + Send + 'a {
        match self {
            Reader::Server(server) => Either::Left(server.tracked_async(flow, runtime)),
            Reader::Sentinel(sentinel) => Either::Right(sentinel.tracked_async(flow, runtime)),
        }
    }
}

/// `operation` without asking the keys' times to live, if it is a read: what a near fill that
/// could not be read where its keys get tracked is sent as instead.
fn unkept(operation: Operation<'_>) -> Operation<'_> {
    match operation {
        Operation::Read {
            entry, tags, ttl, ..
        } => Operation::Read {
            entry,
            tags,
            ttl,
            expiry: false,
        },
        other => other,
    }
}

/// A read of one entry, or of several, which a server's tracking connections may answer without
/// reading the tags: one `GET`, or one `MGET` of the entries.
fn tracked_read(operation: Operation<'_>) -> Option<TrackedRead<'_>> {
    match operation {
        Operation::Read {
            entry,
            tags,
            ttl,
            expiry,
        } => Some(TrackedRead {
            entries: Entries::One { entry, ttl, expiry },
            tags,
        }),
        Operation::ReadMany { entries, tags } => Some(TrackedRead {
            entries: Entries::Many(entries),
            tags,
        }),
        _ => None,
    }
}

impl RedisStore {
    /// The reply of a `set` a data connection sent (`TrackedSetFlow`), or `None` when the
    /// script's round is still to be sent (nothing was, the plain `SET` is to be written
    /// again, or the server did not know the script: the round then loads it).
    fn set_sent(&self, sent: RedisResult<SetSent>) -> Option<Result<Reply, BackendError>> {
        match sent {
            Ok(SetSent::Unsent) => None,
            Err(error) if commands::unknown_script(&error) => None,
            Ok(SetSent::Plain) => {
                self.backoff.succeeded();
                Some(Ok(Reply::Done(true)))
            }
            Ok(SetSent::Script(round, replies)) => Some(self.received(&round, Ok(replies))),
            Err(error) => Some(Err(self.failure(error))),
        }
    }

    /// A `set` of one entry, which a data connection that knows its tags' versions may send as
    /// one plain `SET` ([`TrackedSetFlow`]).
    fn tracked_set<'o>(&self, operation: Operation<'o>) -> Option<TrackedSet<'o>> {
        let (write, lifetime) = match operation {
            Operation::WriteStamped {
                writes: [write],
                lifetime,
                ..
            }
            | Operation::Write {
                writes: [write],
                lifetime,
            } => (write, lifetime),
            _ => return None,
        };
        Some(TrackedSet {
            write,
            lifetime,
            tombstone_lifetime: self.tombstone_lifetime,
        })
    }
}

/// The same server, spoken to in RESP3 (which carries invalidation messages). Without the
/// `CLIENT SETINFO`s redis-rs sends after `HELLO`: a server that does not answer would make a
/// new connection wait one timeout per command of the handshake.
pub(super) fn resp3(info: &ConnectionInfo) -> ConnectionInfo {
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3)
        .set_skip_set_lib_name();
    info.clone().set_redis_settings(redis)
}

/// Errors that say the server could not be reached or did not answer in time.
pub(crate) fn is_connection_trouble(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || error.is_cluster_error()
}
