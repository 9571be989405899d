//! Opening a server's data connections: each runtime's async one (shared by the calls on that
//! runtime) and the pooled blocking ones, tracking in-band when the server lets them.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Connection, PushInfo, RedisError, RedisResult};

use super::super::connections::PerRuntime;
use super::super::tracking::{apply, Informed, KnownTags};
use super::super::{PipelinedReads, Timeouts};
use super::AutoPipeline;

/// An async data connection, and the tag versions it knows (`None`: it does not track). Shared
/// by its runtime's calls behind one `Arc`: a call takes one reference, and clones the
/// connection itself only to send on it (a pipeline's reads but the one that sends it do not).
pub(in crate::backend::redis) struct DataConnection {
    pub connection: MultiplexedConnection,
    pub known: Option<Arc<KnownTags>>,
    /// Its reads' auto-pipelining: the round trips in flight, the reads gathered for the next.
    pub pipeline: Arc<AutoPipeline>,
}

/// One server's async data connections, one per runtime.
pub(in crate::backend::redis) struct DataConnections {
    dial: Arc<Dial>,
    /// Each runtime's connection, or the attempt to open it that every caller on that runtime
    /// awaits together (so that a failed attempt fails them all at once, rather than each
    /// trying again in turn while the server does not answer).
    per_runtime: PerRuntime<Opened>,
}

/// A runtime's data connection, or the attempt to open it.
#[derive(Clone)]
enum Opened {
    Connecting(Shared<BoxFuture<'static, RedisResult<Arc<DataConnection>>>>),
    /// Open: what every call takes without awaiting the attempt again.
    Open(Arc<DataConnection>),
}

/// How a data connection is opened.
struct Dial {
    /// The server, spoken to in RESP3 (invalidation messages are RESP3 pushes); `None`: the
    /// connections do not track.
    tracked: Option<Client>,
    /// The server as configured, for a server that refuses RESP3 or tracking.
    plain: Client,
    config: AsyncConnectionConfig,
    /// The server refused tracking once: plain connections from then on.
    untracked: AtomicBool,
    /// How long a tracked connection may take to open: RESP3's `HELLO` waits for the server's
    /// answer, so no longer than a response may take (nor than connecting may).
    handshake: Duration,
    /// Counts the reads the connections' pipelines carry with others.
    pipelined: PipelinedReads,
    /// How long a call may wait for a reply: the socket timeout.
    budget: Duration,
}

impl DataConnections {
    pub(in crate::backend::redis) fn new(
        tracked: Option<Client>,
        plain: Client,
        timeouts: Timeouts,
        pipelined: PipelinedReads,
    ) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.socket));
        Self {
            dial: Arc::new(Dial {
                tracked,
                plain,
                config,
                untracked: AtomicBool::new(false),
                handshake: timeouts.connect.min(timeouts.socket),
                pipelined,
                budget: timeouts.socket,
            }),
            per_runtime: PerRuntime::default(),
        }
    }

    /// This runtime's connection, opened (once, whoever asks first) when it has none.
    pub(in crate::backend::redis) async fn get(
        &self,
        runtime: tokio::runtime::Id,
    ) -> RedisResult<Arc<DataConnection>> {
        let connecting = match self.per_runtime.get(runtime) {
            Some(Opened::Open(open)) => return Ok(open),
            Some(Opened::Connecting(connecting)) => connecting,
            None => {
                let connecting = Arc::clone(&self.dial).connect().boxed().shared();
                let opened = Opened::Connecting(connecting.clone());
                self.per_runtime.insert(runtime, opened);
                connecting
            }
        };
        let connected = connecting.clone().await;
        if let Ok(open) = &connected {
            // Unless the attempt was forgotten meanwhile (a failed call), or replaced.
            self.per_runtime.replace(runtime, Opened::Open(open.clone()), |opened| {
                matches!(opened, Opened::Connecting(attempt) if attempt.ptr_eq(&connecting))
            });
        }
        connected
    }

    /// A blocking connection, tracking when the server lets it.
    pub(in crate::backend::redis) fn connect_blocking(
        &self,
        timeouts: Timeouts,
    ) -> RedisResult<SyncData> {
        self.dial.connect_blocking(timeouts)
    }

    /// Forgets this runtime's connection: the next call opens a new one.
    pub(in crate::backend::redis) fn forget(&self, runtime: tokio::runtime::Id) {
        self.per_runtime.forget(runtime);
    }
}

impl Dial {
    async fn connect(self: Arc<Self>) -> RedisResult<Arc<DataConnection>> {
        if let Some(tracked) = self.tracking_client() {
            if let Some(settled) = self.settled(self.connect_tracked(tracked).await) {
                return settled.map(Arc::new);
            }
        }
        let connection = self
            .plain
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(Arc::new(DataConnection {
            connection,
            known: None,
            pipeline: Arc::new(AutoPipeline::new(self.pipelined.clone(), self.budget)),
        }))
    }

    fn connect_blocking(&self, timeouts: Timeouts) -> RedisResult<SyncData> {
        if let Some(tracked) = self.tracking_client() {
            let handshake = Timeouts {
                connect: self.handshake,
                ..timeouts
            };
            let attempt = Self::open_blocking(tracked, handshake).and_then(Self::track_blocking);
            if let Some(settled) = self.settled(attempt) {
                return settled;
            }
        }
        Ok(SyncData {
            connection: Self::open_blocking(&self.plain, timeouts)?,
            tracking: None,
        })
    }

    fn open_blocking(client: &Client, timeouts: Timeouts) -> RedisResult<Connection> {
        let connection = client.get_connection_with_timeout(timeouts.connect)?;
        connection.set_read_timeout(Some(timeouts.socket))?;
        connection.set_write_timeout(Some(timeouts.socket))?;
        Ok(connection)
    }

    fn track_blocking(mut connection: Connection) -> RedisResult<SyncData> {
        let (sender, messages) = std::sync::mpsc::channel();
        connection.set_push_sender(sender);
        tracking_on().exec(&mut connection)?;
        let known = KnownTags::default();
        known.trust();
        Ok(SyncData {
            connection,
            tracking: Some(Tracking { known, messages }),
        })
    }

    /// The server to open a tracked connection to, unless it refused tracking before.
    fn tracking_client(&self) -> Option<&Client> {
        self.tracked
            .as_ref()
            .filter(|_| !self.untracked.load(Ordering::Relaxed))
    }

    /// What the attempt to open a tracked connection came to: `Some` to return (the connection,
    /// or an error a plain connection would meet too), `None` when the server refused tracking
    /// (turned off from now on, with one warning): open a plain connection instead.
    fn settled<T>(&self, attempt: RedisResult<T>) -> Option<RedisResult<T>> {
        match attempt {
            Err(error) if refuses_tracking(&error) => {
                tracing::warn!(
                    target: "rtc",
                    %error,
                    "the Redis server refused RESP3 or client tracking: every hit reads its tags"
                );
                self.untracked.store(true, Ordering::Relaxed);
                None
            }
            attempt => Some(attempt),
        }
    }

    async fn connect_tracked(&self, tracked: &Client) -> RedisResult<DataConnection> {
        let known = Arc::new(KnownTags::default());
        let informed = Arc::clone(&known);
        // Runs in the connection's reader, before the replies read after the message.
        let pushes = move |push: PushInfo| {
            inform(&informed, push);
            Ok::<(), Infallible>(())
        };
        let config = self
            .config
            .clone()
            .set_connection_timeout(Some(self.handshake))
            .set_push_sender(pushes);
        let mut connection = tracked
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        tracking_on().exec_async(&mut connection).await?;
        known.trust();
        Ok(DataConnection {
            connection,
            known: Some(known),
            pipeline: Arc::new(AutoPipeline::new(self.pipelined.clone(), self.budget)),
        })
    }
}

/// A pooled blocking connection, and what it tracks.
pub(in crate::backend::redis) struct SyncData {
    pub connection: Connection,
    pub tracking: Option<Tracking>,
}

/// A blocking connection's versions, and the channel its reader puts messages on (drained into
/// the versions after each reply, before the reply is looked at).
pub(in crate::backend::redis) struct Tracking {
    known: KnownTags,
    messages: Receiver<PushInfo>,
}

impl Tracking {
    pub(in crate::backend::redis) fn known(&self) -> &KnownTags {
        &self.known
    }

    /// Applies every message the connection's reader put aside while reading replies.
    pub(in crate::backend::redis) fn take_messages(&self) {
        while let Ok(message) = self.messages.try_recv() {
            inform(&self.known, message);
        }
    }
}

impl SyncData {
    /// Applies the messages that came with the last replies (they would pile up otherwise).
    pub(in crate::backend::redis) fn take_messages(&self) {
        if let Some(tracking) = &self.tracking {
            tracking.take_messages();
        }
    }
}

/// Applies one of a connection's messages to what it knows; a lost connection (the message
/// redis-rs gives when it drops) closes it for good.
fn inform(known: &KnownTags, message: PushInfo) {
    if !apply(known, message) {
        known.distrust();
    }
}

/// Whether `error` says the server will not track for this client (a server before Redis 6 knows
/// no `HELLO`; an ACL may forbid `CLIENT TRACKING`), rather than that it could not be reached or
/// refused the client altogether (which a plain connection would not get past either).
fn refuses_tracking(error: &RedisError) -> bool {
    match error.code() {
        Some("NOPERM" | "NOPROTO") => true,
        Some("ERR") => error
            .detail()
            .is_some_and(|detail| detail.to_ascii_lowercase().contains("unknown")),
        _ => false,
    }
}

/// `CLIENT TRACKING ON OPTIN`: the keys of a command sent right after `CLIENT CACHING YES` are
/// tracked for this connection, and no other.
fn tracking_on() -> Cmd {
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("OPTIN");
    tracking
}
