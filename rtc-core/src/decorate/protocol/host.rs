//! What the protocol asks of the process a call runs in, besides round trips: the facts its
//! settings give, this process's flights and near cache, decoding, and its counters.
//!
//! The engine's cache is the real host (`decorate/host.rs`); the protocol's unit tests bring a
//! host of their own, and so can a simulator, one per simulated process. The protocol is
//! generic over it, so a real call pays no dynamic dispatch for it.

use std::any::Any;
use std::time::Duration;

use super::super::outcome::ValueCodec;
use crate::cache::flights::Joined;
use crate::codec::Encoding;
use crate::engine::Expiry;
use crate::format::{self, EntryKeys, KeySpace, Observed};
use crate::lifetime::Lifetime;
use crate::near::{Fill, Named};

/// Something the protocol counts (hits, misses and writes in the cache's statistics; waits
/// also in the metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    /// A call answered without computing.
    Hit,
    /// A call that computes.
    Miss,
    /// A value past its lifetime was returned.
    StaleHit,
    /// A call of this function starts waiting for another caller's computation.
    LockWait(&'static str),
    /// A computed value was stored.
    Write,
}

/// The process a call's protocol runs in.
pub(crate) trait Host {
    /// True when other processes share the backend, so that a Redis lock means something.
    fn shared(&self) -> bool;

    /// The names of keys, for the entry's reads and lock.
    fn key_space(&self) -> &KeySpace;

    /// How long a tag created before a computation lives (`None`: forever).
    fn tag_lifetime(&self) -> Option<Duration>;

    /// How long an entry stored with `lifetime` lives (`None`: forever).
    fn entry_lifetime(&self, lifetime: Lifetime) -> Option<Duration>;

    /// How long the tombstone of a deleted entry stays: a value computed by a call older than
    /// this is not stored, since a delete during the call may have left a tombstone that has
    /// expired since (`format::tombstone_lifetime` of the default entry lifetime).
    fn tombstone_lifetime(&self) -> Duration {
        format::tombstone_lifetime(self.entry_lifetime(Lifetime::Default))
    }

    /// Joins this process's computation of `entry`, or leads it.
    fn join_flight(&self, entry: &str) -> Joined;

    /// A value section as the call's value; a section that does not decode is a miss (and the
    /// host reports it). By default, decoded with the default encoding, and nothing reported.
    fn decode<V>(&self, codec: &ValueCodec<V>, section: &[u8]) -> Option<V> {
        codec.open(Encoding::default(), section).ok().flatten()
    }

    /// Registers the first read of `keys` as a fill of the near cache under `named`. By default
    /// there is no near cache: `None`.
    fn near_fill(&self, _named: Option<&Named<'_, String>>, _keys: &EntryKeys) -> Option<Fill> {
        None
    }

    /// Keeps a decoded value that a registered read found, in the near cache. By default there
    /// is no near cache, so nothing is kept.
    fn keep_decoded(
        &self,
        _fill: Fill,
        _kept: Box<dyn Any + Send + Sync>,
        _expiry: Expiry,
        _observed: &Observed,
    ) {
    }

    /// Counts `counted`.
    fn count(&self, counted: Counted);
}
