//! One server's async data connections, each tracking in-band the tags it reads, so that a hit
//! whose tag versions the connection knows is one `GET` of its entry.
//!
//! Each runtime's connection speaks RESP3 and turns `CLIENT TRACKING ON OPTIN` on before it is
//! used. A read that names tags this connection does not know sends `CLIENT CACHING YES`, an
//! `MGET` and a `PTTL` of each such tag ahead of its own commands: Redis then tracks those tags
//! for this connection, and its invalidation messages arrive on the same socket, handled by the
//! connection's reader before any later reply is handed out. The versions live in a
//! [`KnownTags`], whose logic (and why it is sound) is in `tracking/known.rs`.
//!
//! A read whose tags are all known sends only `GET entry` (and `PTTL entry` when its caller
//! asked for the time to live), then looks at the versions again once the reply is in: if they
//! are unchanged, no change to those tags happened before the `GET` ran, and the reply carries
//! them as if they had been read with it. Otherwise the read is sent again in full.
//!
//! The connection is rtc's own (no `ConnectionManager`, which reconnects without sending
//! tracking options again): a lost connection closes its table for good and is replaced on
//! the next call. A server that refuses RESP3 or tracking gets plain connections, read in full.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use redis::aio::MultiplexedConnection;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use redis::{
    AsyncConnectionConfig, Client, Cmd, Connection, PushInfo, RedisError, RedisResult, Value,
};

use super::commands::{self, Round};
use super::connections::PerRuntime;
use super::tracking::{apply, Informed, Known, KnownTags, Learning, Plan};
use super::Timeouts;
use crate::engine::{Expiry, ReadReply, Reply, Ttl};
use crate::error::BackendError;
use crate::format::{TagKey, Version};

/// An async data connection, and the tag versions it knows (`None`: it does not track).
#[derive(Clone)]
pub(super) struct DataConnection {
    pub connection: MultiplexedConnection,
    pub known: Option<Arc<KnownTags>>,
}

/// One server's async data connections, one per runtime.
pub(super) struct DataConnections {
    dial: Arc<Dial>,
    /// Each runtime's connection, or the attempt to open it that every caller on that runtime
    /// awaits together (so that a failed attempt fails them all at once, rather than each
    /// trying again in turn while the server does not answer).
    per_runtime: PerRuntime<Shared<BoxFuture<'static, RedisResult<DataConnection>>>>,
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
}

impl DataConnections {
    pub(super) fn new(tracked: Option<Client>, plain: Client, timeouts: Timeouts) -> Self {
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
            }),
            per_runtime: PerRuntime::default(),
        }
    }

    /// This runtime's connection, opened (once, whoever asks first) when it has none.
    pub(super) async fn get(&self, runtime: tokio::runtime::Id) -> RedisResult<DataConnection> {
        let connecting = match self.per_runtime.get(runtime) {
            Some(connecting) => connecting,
            None => {
                let connecting = Arc::clone(&self.dial).connect().boxed().shared();
                self.per_runtime.insert(runtime, connecting.clone());
                connecting
            }
        };
        connecting.await
    }

    /// A blocking connection, tracking when the server lets it.
    pub(super) fn connect_blocking(&self, timeouts: Timeouts) -> RedisResult<SyncData> {
        self.dial.connect_blocking(timeouts)
    }

    /// Forgets this runtime's connection: the next call opens a new one.
    pub(super) fn forget(&self, runtime: tokio::runtime::Id) {
        self.per_runtime.forget(runtime);
    }
}

impl Dial {
    async fn connect(self: Arc<Self>) -> RedisResult<DataConnection> {
        let tracked = self.tracked.as_ref();
        if let Some(tracked) = tracked.filter(|_| !self.untracked.load(Ordering::Relaxed)) {
            match self.connect_tracked(tracked).await {
                Ok(connection) => return Ok(connection),
                Err(error) if refuses_tracking(&error) => self.refused(&error),
                Err(error) => return Err(error),
            }
        }
        let connection = self
            .plain
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(DataConnection {
            connection,
            known: None,
        })
    }

    fn connect_blocking(&self, timeouts: Timeouts) -> RedisResult<SyncData> {
        let tracked = self.tracked.as_ref();
        if let Some(tracked) = tracked.filter(|_| !self.untracked.load(Ordering::Relaxed)) {
            let timeouts = Timeouts {
                connect: self.handshake,
                ..timeouts
            };
            match Self::open_blocking(tracked, timeouts).and_then(Self::track_blocking) {
                Ok(connection) => return Ok(connection),
                Err(error) if refuses_tracking(&error) => self.refused(&error),
                Err(error) => return Err(error),
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

    /// The server refused RESP3 or tracking: plain connections from now on.
    fn refused(&self, error: &RedisError) {
        tracing::warn!(
            target: "rtc",
            %error,
            "the Redis server refused RESP3 or client tracking: every hit reads its tags"
        );
        self.untracked.store(true, Ordering::Relaxed);
    }

    async fn connect_tracked(&self, tracked: &Client) -> RedisResult<DataConnection> {
        let known = Arc::new(KnownTags::default());
        let informed = Arc::clone(&known);
        // Runs in the connection's reader, before the replies read after the message.
        let pushes = move |push: PushInfo| {
            if !apply(&*informed, push) {
                informed.distrust();
            }
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
        })
    }
}

/// A pooled blocking connection, and what it tracks.
pub(super) struct SyncData {
    pub connection: Connection,
    pub tracking: Option<Tracking>,
}

/// A blocking connection's versions, and the channel its reader puts messages on (drained into
/// the versions after each reply, before the reply is looked at).
pub(super) struct Tracking {
    known: KnownTags,
    messages: Receiver<PushInfo>,
}

impl Tracking {
    pub(super) fn known(&self) -> &KnownTags {
        &self.known
    }

    /// Applies every message the connection's reader put aside while reading replies.
    pub(super) fn take_messages(&self) {
        while let Ok(message) = self.messages.try_recv() {
            if !apply(&self.known, message) {
                self.known.distrust();
            }
        }
    }
}

impl SyncData {
    /// Applies the messages that came with the last replies (they would pile up otherwise).
    pub(super) fn take_messages(&self) {
        if let Some(tracking) = &self.tracking {
            tracking.take_messages();
        }
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

/// What a read sent on a tracked connection got back.
pub(super) enum Answered {
    /// The one-`GET` round's replies, and the versions known before and after it.
    Known(Vec<Value>, Known),
    /// The full round, and its replies (what learned versions came first are already taken).
    Read(Round, Vec<Value>),
}

/// A read of one entry and its tags, as the tracked connection sends it.
pub(super) struct TrackedRead<'a> {
    pub entry: &'a str,
    pub tags: &'a [TagKey],
    /// The caller asked for the entry's time to live.
    pub ttl: bool,
    /// The caller asked how long every key read has to live.
    pub expiry: bool,
}

impl TrackedRead<'_> {
    /// The read in full: the entry and every tag (on one server).
    pub(super) fn round(&self) -> Round {
        Round::read(
            commands::Topology::Standalone,
            self.entry,
            self.tags,
            self.ttl,
            self.expiry,
        )
    }

    /// The one-`GET` round: the entry, and its time to live when asked for.
    pub(super) fn hit_commands(&self) -> Vec<Cmd> {
        let mut get = redis::cmd("GET");
        get.arg(self.entry);
        let mut commands = vec![get];
        if self.ttl || self.expiry {
            commands.push(commands::pttl(self.entry));
        }
        commands
    }

    /// The reply of [`TrackedRead::hit_commands`], with the versions known around it.
    pub(super) fn hit_reply(
        &self,
        replies: Vec<Value>,
        known: Known,
    ) -> Result<Reply, BackendError> {
        let mut replies = replies;
        let ttl = match self.ttl || self.expiry {
            true => commands::ttls_at_end(&mut replies, 1)?
                .pop()
                .unwrap_or_default(),
            false => Ttl::Unasked,
        };
        let [entry] = <[Value; 1]>::try_from(replies).map_err(|_| BackendError::UnexpectedReply)?;
        let expiry = match (self.expiry, known.until) {
            (false, _) => Expiry::Unknown,
            (true, u64::MAX) => ttl.expiry(),
            (true, until) => {
                let left = until.saturating_sub(crate::clock::now_ms());
                ttl.expiry()
                    .min(Expiry::After(std::time::Duration::from_millis(left)))
            }
        };
        Ok(Reply::Read(ReadReply {
            entry: commands::bulk(entry)?,
            versions: known.versions,
            expiry,
            ttl: if self.ttl { ttl } else { Ttl::Unasked },
        }))
    }
}

/// What a tracked read asks its driver for next.
pub(super) enum Next {
    /// Send these commands in one round trip, then [`TrackedReadFlow::next`] with the replies
    /// (after applying every message that arrived ahead of them).
    Send(Vec<Cmd>),
    /// The read is answered.
    Done(Answered),
}

/// A read of one entry on a data connection, as a state machine that does no I/O: one `GET`
/// when the connection knows every tag's version, else the whole read, learning the tags it
/// does not know on the way. The async and blocking drivers in `server.rs` send what it asks.
pub(super) struct TrackedReadFlow<'a> {
    read: &'a TrackedRead<'a>,
    /// The connection's versions (`None`: it does not track).
    known: Option<&'a KnownTags>,
    sent: Sent,
}

enum Sent {
    Nothing,
    /// The one `GET`, sent with these versions known.
    Hit(Known),
    /// The whole read, after learning these tags (when some) from a request sent at `at`.
    Full {
        round: Round,
        learning: Option<Learning>,
        at: u64,
    },
    Finished,
}

impl<'a> TrackedReadFlow<'a> {
    pub(super) fn new(read: &'a TrackedRead<'a>, known: Option<&'a KnownTags>) -> Self {
        Self {
            read,
            known,
            sent: Sent::Nothing,
        }
    }

    /// The next step, given the replies to the commands of the last (`None` at first).
    pub(super) fn next(&mut self, replies: Option<Vec<Value>>) -> RedisResult<Next> {
        let tags = self.read.tags;
        let now = crate::clock::now_ms();
        match (std::mem::replace(&mut self.sent, Sent::Finished), replies) {
            (Sent::Nothing, _) => Ok(match self.known.map(|known| known.plan(tags, now)) {
                Some(Plan::OneGet(before)) => {
                    self.sent = Sent::Hit(before);
                    Next::Send(self.read.hit_commands())
                }
                Some(Plan::Full(learning)) => self.full(learning, now),
                None => self.full(None, now),
            }),
            (Sent::Hit(before), Some(replies)) => {
                let known = self.known.filter(|known| !known.still(tags, &before, now));
                Ok(match known {
                    None => Next::Done(Answered::Known(replies, before)),
                    // A tag changed, or its time ran out, before the reply came: the `GET` may
                    // have run after it. Read it all again.
                    Some(known) => self.full(known.learn(tags, now), now),
                })
            }
            (
                Sent::Full {
                    round,
                    learning,
                    at,
                },
                Some(mut replies),
            ) => {
                if let (Some(known), Some(learning)) = (self.known, &learning) {
                    match learned(&mut replies, learning) {
                        Ok((versions, ttls)) => known.learned(learning, &versions, &ttls, at),
                        Err(error) => {
                            known.abandon(learning);
                            return Err(unexpected(error));
                        }
                    }
                }
                Ok(Next::Done(Answered::Read(round, replies)))
            }
            (_, _) => Err(unexpected(BackendError::Internal(
                "a tracked read stepped out of order",
            ))),
        }
    }

    /// The commands of the last step failed with `error`. A `GET` refused because the key is
    /// not a string (which `MGET` reads as no entry) is sent again as the whole read; otherwise
    /// what they were to learn is dropped and the read fails.
    pub(super) fn failed(&mut self, error: RedisError) -> RedisResult<Next> {
        match std::mem::replace(&mut self.sent, Sent::Finished) {
            Sent::Hit(_) if error.code() == Some("WRONGTYPE") => {
                let now = crate::clock::now_ms();
                let learning = self
                    .known
                    .and_then(|known| known.learn(self.read.tags, now));
                Ok(self.full(learning, now))
            }
            Sent::Full {
                learning: Some(learning),
                ..
            } => {
                if let Some(known) = self.known {
                    known.abandon(&learning);
                }
                Err(error)
            }
            _ => Err(error),
        }
    }

    fn full(&mut self, learning: Option<Learning>, now: u64) -> Next {
        let round = self.read.round();
        let mut commands = learning.as_ref().map(learn_commands).unwrap_or_default();
        commands.extend(round.commands.iter().cloned());
        self.sent = Sent::Full {
            round,
            learning,
            at: now,
        };
        Next::Send(commands)
    }
}

/// The commands that learn `learning`'s tags, sent ahead of a round: `CLIENT CACHING YES` (so
/// that the next command's keys are tracked), their `MGET`, and a `PTTL` of each.
pub(super) fn learn_commands(learning: &Learning) -> Vec<Cmd> {
    let tags = learning.tags();
    let mut caching = redis::cmd("CLIENT");
    caching.arg("CACHING").arg("YES");
    let mut commands = vec![caching];
    commands.extend(commands::get_all(
        commands::Topology::Standalone,
        tags.iter().map(TagKey::as_str),
    ));
    commands.extend(tags.iter().map(|tag| commands::pttl(tag.as_str())));
    commands
}

/// Takes the replies of [`learn_commands`] off the front of a round's: each tag's version and
/// time to live.
pub(super) fn learned(
    replies: &mut Vec<Value>,
    learning: &Learning,
) -> Result<(Vec<Option<Version>>, Vec<Ttl>), BackendError> {
    let count = learning.tags().len();
    if replies.len() < 2 + count {
        return Err(BackendError::UnexpectedReply);
    }
    let rest = replies.split_off(2 + count);
    let mut learned = std::mem::replace(replies, rest);
    let ttls = commands::ttls_at_end(&mut learned, count)?;
    let versions = match learned.pop() {
        Some(Value::Array(values)) if values.len() == count => values
            .into_iter()
            .map(commands::version)
            .collect::<Result<_, _>>()?,
        _ => return Err(BackendError::UnexpectedReply),
    };
    Ok((versions, ttls))
}

/// The reply a tracked read's answer makes.
pub(super) fn reply(read: &TrackedRead<'_>, answered: Answered) -> Result<Reply, BackendError> {
    match answered {
        Answered::Known(replies, known) => read.hit_reply(replies, known),
        Answered::Read(round, replies) => round.reply(replies),
    }
}

/// An error of the driver's own, for a reply the learning commands did not expect.
pub(super) fn unexpected(error: BackendError) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "unexpected reply",
        error.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::KeySpace;

    #[test]
    fn learned_replies_come_off_the_front() {
        let space = KeySpace::new("inband-tests");
        let tags = vec![space.user_tag("a"), space.user_tag("b")];
        let known = KnownTags::default();
        known.trust();
        let learning = known.learn(&tags, 0).expect("both unknown");
        assert_eq!(learn_commands(&learning).len(), 4);
        let v = Version::from_u64(9);
        let mut replies = vec![
            Value::Okay,
            Value::Array(vec![Value::BulkString(v.as_bytes().to_vec()), Value::Nil]),
            Value::Int(-1),
            Value::Int(-2),
            Value::Int(42),
        ];
        let (versions, ttls) = learned(&mut replies, &learning).expect("well formed");
        assert_eq!(versions, vec![Some(v), None]);
        assert_eq!(ttls, vec![Ttl::Forever, Ttl::from_pttl(-2)]);
        assert_eq!(replies, vec![Value::Int(42)]);
    }
}
