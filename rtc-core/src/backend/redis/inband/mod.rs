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
//! The async connection is rtc's own (no `ConnectionManager`, which reconnects without sending
//! tracking options again): a lost connection closes its table for good and is replaced on the
//! next call. A server that refuses tracking gets plain connections, read in full.

mod connections;
mod read;

pub(super) use self::connections::{DataConnection, DataConnections, SyncData, Tracking};
pub(super) use self::read::{reply, Answered, Entries, Next, TrackedRead, TrackedReadFlow};
