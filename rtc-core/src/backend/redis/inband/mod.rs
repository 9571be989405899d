//! The data connections of one server, each tracking in-band the tags it reads, so that a hit
//! whose tag versions the connection knows is one `GET` of its entry.
//!
//! Every connection (the pooled blocking ones, each runtime's async one) speaks RESP3 and turns
//! `CLIENT TRACKING ON OPTIN` on before it is used (`connections.rs`). A read that names tags
//! this connection does not know sends `CLIENT CACHING YES`, an `MGET` and a `PTTL` of each such
//! tag ahead of its own commands: Redis then tracks those tags for this connection, and its
//! invalidation messages arrive on the same socket, applied before any later reply is looked
//! at. The versions live in a [`KnownTags`](super::tracking::KnownTags), whose logic (and why
//! it is sound) is in `tracking/known.rs`.
//!
//! A read whose tags are all known sends only `GET entry` (and `PTTL entry` when its caller
//! asked for the time to live), then looks at the versions again once the reply is in: if they
//! are unchanged, no change to those tags happened before the `GET` ran, and the reply carries
//! them as if they had been read with it. Otherwise the read is sent again in full. That is the
//! sans-IO [`TrackedReadFlow`] (`read.rs`), which the blocking and async drivers in `server.rs`
//! step alike.
//!
//! A `set` of one entry whose tags are all known is one plain `SET` of the entry stamped with
//! them, as a lineage of its own, checked the same way once its reply is in: if a change to one
//! of its tags came first, the stamped-write script writes it again with the versions of that
//! moment ([`TrackedSetFlow`], `set.rs`). One whose tags it does not know sends the script led by
//! the commands that learn them, so that the next one is a plain `SET`.
//!
//! The async connection is rtc's own (no `ConnectionManager`, which reconnects without sending
//! tracking options again): a lost connection closes its table for good and is replaced on the
//! next call. A server that refuses tracking gets plain connections, read in full.

mod autopipeline;
mod connections;
mod read;
mod set;

use redis::{Cmd, RedisError, RedisResult, Value};
use smallvec::SmallVec;

use super::tracking::KnownTags;

pub(super) use self::autopipeline::AutoPipeline;
pub(super) use self::connections::{DataConnection, DataConnections, SyncData, Tracking};
pub(super) use self::read::{reply, Entries, TrackedRead, TrackedReadFlow};
pub(crate) use self::set::TrackedSet;
#[cfg(feature = "simulation")]
pub(crate) use self::set::{plan_set, PlainSet, SetPlan};
pub(super) use self::set::{SetSent, TrackedSetFlow};

/// The commands of one round trip: a hit's one or two without an allocation.
pub(in crate::backend::redis) type Commands = SmallVec<[Cmd; 2]>;

/// What a flow on a data connection asks its driver for next.
pub(in crate::backend::redis) enum Next<T> {
    /// Send these commands in one round trip, then step the flow with the replies (after
    /// applying every message that arrived ahead of them).
    Send(Commands),
    /// The flow is done.
    Done(T),
}

/// A state machine that does no I/O, stepped on one data connection by the blocking and async
/// drivers of `server.rs` alike: a read of entries ([`TrackedReadFlow`]) or a `set`
/// ([`TrackedSetFlow`]).
pub(in crate::backend::redis) trait InBandFlow {
    /// What the flow ends with.
    type Output: Send;

    /// Whether the flow's rounds may be sent twice: a read's may, a write's may not. The async
    /// drivers pipeline such rounds with other callers' (`autopipeline.rs`), and send them again
    /// if the caller that led their pipeline went away before its reply.
    const IDEMPOTENT: bool;

    /// The next step, given the replies to the commands of the last (`None` at first) and the
    /// connection's versions (`None`: it does not track).
    fn next(
        &mut self,
        known: Option<&KnownTags>,
        replies: Option<Vec<Value>>,
    ) -> RedisResult<Next<Self::Output>>;

    /// The commands of the last step failed with `error`.
    fn failed(
        &mut self,
        known: Option<&KnownTags>,
        error: RedisError,
    ) -> RedisResult<Next<Self::Output>>;
}
