//! How a call becomes keys, flows and operations: what the public API and the `#[cached]`
//! support code share.

use std::sync::PoisonError;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::flights::Flights;
use super::TaggedCache;
use crate::backend::Backend;
use crate::codec::Encoding;
use crate::engine::{EntryWrite, Operation, ReadFlow, ReadManyFlow, WriteFlow};
use crate::format::{self, EntryKeys, KeySpace, Observed, TagKey, Version};
use crate::hook::Hook;
use crate::lifetime::Lifetime;
use crate::stats::Counters;

impl TaggedCache {
    /// The keys of the entry whose key is the concatenation of `key`'s parts (see
    /// [`EntryKeys::new`]).
    pub(crate) fn entry_keys<I, S>(
        &self,
        key: &[&str],
        tags: I,
        implicit: impl IntoIterator<Item = TagKey>,
    ) -> EntryKeys
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        EntryKeys::new(&self.inner.keys, key, tags, implicit)
    }

    /// Reads an entry: a hit, a miss, or unavailable.
    pub(crate) fn read_flow<'a>(&'a self, keys: &'a EntryKeys) -> ReadFlow<'a> {
        ReadFlow::new(&self.inner.keys, keys)
    }

    /// Reads many entries in one round trip (two when some carry implicit tags).
    pub(crate) fn read_many_flow<'a>(&'a self, keys: &'a [EntryKeys]) -> ReadManyFlow<'a> {
        ReadManyFlow::new(&self.inner.keys, keys)
    }

    /// Writes each payload stamped with its tags' versions as they are when it lands.
    pub(crate) fn write_flow<'a>(
        &self,
        writes: Vec<EntryWrite<'a>>,
        lifetime: Lifetime,
    ) -> WriteFlow<'a> {
        WriteFlow::new(
            writes,
            self.lifetimes(lifetime),
            self.inner.backend.stamps_atomically(),
        )
    }

    /// Writes a computed value stamped with `observed`, the versions read (and completed)
    /// *before* it was computed, so that an invalidation landing during the computation makes
    /// it miss; a delete since `observed` was read wins. An entry that expires keeps
    /// `stale_window` after its lifetime, recorded in it; one that never expires has none.
    pub(crate) fn write_observed_operation<'a>(
        &self,
        entry: &'a str,
        observed: &'a Observed,
        payload: &'a [u8],
        lifetime: Lifetime,
        stale_window: Duration,
    ) -> Operation<'a> {
        let lifetime = self.lifetimes(lifetime).0;
        Operation::WriteUnlessDeleted {
            entry,
            observed,
            payload,
            lifetime,
            stale_window: if lifetime.is_some() {
                stale_window
            } else {
                Duration::ZERO
            },
        }
    }

    /// The cache-wide stale options (`TaggedCacheBuilder::stale_if_error` and the others).
    pub(crate) fn stale_defaults(&self) -> crate::settings::StaleOptions {
        self.inner.settings.stale
    }

    /// Leaves a tombstone where the entry was.
    pub(crate) fn delete_operation<'a>(
        &self,
        keys: &'a EntryKeys,
        tombstone: &'a [u8],
    ) -> Operation<'a> {
        Operation::Delete {
            entry: &keys.entry,
            tombstone,
            lifetime: self.tombstone_lifetime(),
        }
    }

    /// Gives each tag of `new_versions` its new version.
    pub(crate) fn invalidate_operation<'a>(
        &self,
        new_versions: &'a [(TagKey, Version)],
    ) -> Operation<'a> {
        Operation::Invalidate {
            tags: new_versions,
            lifetime: self.inner.settings.lifetime_for_tags,
        }
    }

    /// New versions for `tags`, for [`TaggedCache::invalidate_operation`].
    pub(crate) fn new_versions(
        &self,
        tags: impl IntoIterator<Item = TagKey>,
    ) -> Vec<(TagKey, Version)> {
        tags.into_iter()
            .map(|tag| (tag, Version::fresh()))
            .collect()
    }

    /// A decorated function's own tag, derived once per cache and function from its identity.
    pub(crate) fn function_tag(&self, id: &'static str) -> TagKey {
        if let Some(tag) = self
            .inner
            .function_tags
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return tag.clone();
        }
        let tag = self.inner.keys.implicit_tag(id);
        self.inner
            .function_tags
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tag.clone());
        tag
    }

    /// How long tags live (`None`: forever).
    pub(crate) fn lifetime_for_tags(&self) -> Option<Duration> {
        self.inner.settings.lifetime_for_tags
    }

    /// The lifetime of entries stored without one of their own.
    pub(crate) fn default_lifetime(&self) -> Option<Duration> {
        self.inner.settings.default_lifetime
    }

    pub(crate) fn key_space(&self) -> &KeySpace {
        &self.inner.keys
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn hook(&self) -> Option<&Hook> {
        self.inner.settings.hook.as_ref()
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.flights
    }

    /// `value` as a value section in this cache's encoding; `None` (with a warning) when it
    /// does not serialize.
    pub(crate) fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Option<Vec<u8>> {
        match self.encoding().encode(value) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                self.codec_trouble(format_args!(
                    "value could not be serialized, not caching it: {error}"
                ));
                None
            }
        }
    }

    /// The value of a value section; `None` (with a warning) when it was written by another
    /// codec or does not decode as `T`.
    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Option<T> {
        self.decode_with(self.encoding(), bytes)
    }

    /// [`TaggedCache::decode`] with another encoding than the cache's.
    pub(crate) fn decode_with<T: DeserializeOwned>(
        &self,
        encoding: Encoding,
        bytes: &[u8],
    ) -> Option<T> {
        match encoding.decode(bytes) {
            Ok(value) => Some(value),
            Err(trouble) => {
                self.codec_trouble(format_args!("{trouble}; treating it as a miss"));
                None
            }
        }
    }

    /// How this cache writes values.
    pub(crate) fn encoding(&self) -> Encoding {
        self.inner.settings.encoding
    }

    /// How long a deleted entry's tombstone stays (`format::tombstone_lifetime`), so that a
    /// computation in flight cannot bring the entry back.
    fn tombstone_lifetime(&self) -> Option<Duration> {
        Some(format::tombstone_lifetime(
            self.inner.settings.default_lifetime,
        ))
    }

    /// Entry lifetime for a write (`None`: never expires) and tag lifetime.
    fn lifetimes(&self, lifetime: Lifetime) -> (Option<Duration>, Option<Duration>) {
        let entry = lifetime.resolve(self.inner.settings.default_lifetime);
        (entry, self.inner.settings.lifetime_for_tags)
    }
}
