//! The engine's cache as the process a call's protocol runs in.

use std::any::Any;
use std::time::Duration;

use super::outcome::ValueCodec;
use super::protocol::{Counted, Host};
use crate::cache::flights::Joined;
use crate::cache::TaggedCache;
use crate::engine::Expiry;
use crate::format::{EntryKeys, KeySpace, Observed};
use crate::lifetime::Lifetime;
use crate::metrics;
use crate::near::{Fill, Named};

impl Host for TaggedCache {
    fn shared(&self) -> bool {
        self.backend().is_shared()
    }

    fn key_space(&self) -> &KeySpace {
        TaggedCache::key_space(self)
    }

    fn tag_lifetime(&self) -> Option<Duration> {
        self.lifetime_for_tags()
    }

    fn entry_lifetime(&self, lifetime: Lifetime) -> Option<Duration> {
        lifetime.resolve(self.default_lifetime())
    }

    fn join_flight(&self, entry: &str) -> Joined {
        self.flights().join(entry)
    }

    fn decode<V>(&self, codec: &ValueCodec<V>, section: &[u8]) -> Option<V> {
        codec.decode(self, section)
    }

    fn near_fill(&self, named: Option<&Named<'_, String>>, keys: &EntryKeys) -> Option<Fill> {
        TaggedCache::near_fill(self, named, keys)
    }

    fn keep_decoded(
        &self,
        fill: Fill,
        kept: Box<dyn Any + Send + Sync>,
        expiry: Expiry,
        observed: &Observed,
    ) {
        TaggedCache::keep_decoded(self, fill, kept, expiry, observed);
    }

    fn count(&self, counted: Counted) {
        let counters = self.counters();
        match counted {
            Counted::Hit => counters.hits.bump(),
            Counted::Miss => counters.misses.bump(),
            Counted::StaleHit => counters.stale_hits.bump(),
            Counted::Write => counters.sets.bump(),
            Counted::LockWait(function) => {
                counters.lock_waits.bump();
                metrics::lock_wait(self.namespace(), function);
            }
        }
    }
}
