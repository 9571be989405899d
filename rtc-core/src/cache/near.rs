//! The near cache as the public API and the decorated calls use it: look up, register a fill
//! before the read, keep what the read found, and drop what this process changes.

use serde::de::DeserializeOwned;
use smallvec::SmallVec;

use super::TaggedCache;
use crate::engine::EntryWrite;
use crate::engine::Expiry;
use crate::engine::{Flow, Lookup, Operation, Progress, ReadFlow, Received};
use crate::error::CacheMiss;
use crate::format::{EntryKeys, Observed, Version};
use crate::metrics;
use crate::near::{Fill, Named, NearCache, NearValue};
use crate::tags::IntoTags;

/// How a low-level read of a `T` starts.
#[allow(
    clippy::large_enum_variant,
    reason = "matched as soon as it is returned; a box would cost every read an allocation"
)]
pub(crate) enum Begun<T> {
    /// Answered by the near cache: its value section, decoded (a near hit, whether it decodes
    /// as `T` or not).
    Near(Result<T, CacheMiss>),
    /// To be read: these keys, registered as this fill.
    Read(EntryKeys, Option<Fill>),
}

/// A low-level read whose value is kept near when it was registered as a fill: the
/// [`ReadFlow`] it wraps, and the keeping once it is done.
pub(crate) struct NearRead<'a> {
    cache: &'a TaggedCache,
    read: ReadFlow<'a>,
    fill: Option<Fill>,
}

impl Flow for NearRead<'_> {
    type Output = Lookup;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Lookup> {
        match self.read.advance(reply) {
            Progress::Send => Progress::Send,
            Progress::Done(lookup) => {
                self.cache.keep_section(self.fill.take(), &lookup);
                Progress::Done(lookup)
            }
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        self.read.operation()
    }
}

impl TaggedCache {
    /// The near cache, when this cache has one.
    pub(crate) fn near(&self) -> Option<&NearCache> {
        self.inner.near.as_deref()
    }

    /// What a lookup of `key` and `tags` names in the near cache (`function`: a decorated
    /// function's identity, `""` for the low-level API); `None` without a near cache.
    pub(crate) fn named<'a, S: AsRef<str>>(
        &self,
        function: &'static str,
        key: &'a [u8],
        tags: &'a [S],
    ) -> Option<Named<'a, S>> {
        self.near()?;
        Some(Named::new(function, key, tags))
    }

    /// Counts a call answered by the near cache: a hit, and a near hit.
    pub(crate) fn count_near_hit(&self) {
        // Also a hit: `CacheStats::hits` adds the near hits in.
        self.inner.counters.near_hits.bump();
    }

    /// Keeps a decorated call's decoded value, if its read was a fill.
    pub(crate) fn keep_decoded(
        &self,
        fill: Fill,
        value: Box<dyn std::any::Any + Send + Sync>,
        expiry: Expiry,
        observed: &Observed,
    ) {
        if let Some(near) = self.near() {
            near.keep_decoded(fill, value, expiry, observed);
        }
    }

    /// `write` stamped with the versions this process knows its tags have (from reads whose
    /// watches live), so that the write script reads no tag where the entry lands (only the
    /// entry, for a delete's lineage). A version that has just changed elsewhere only
    /// makes the entry miss, never a stale value hit. Unchanged when any version is unknown.
    pub(crate) fn stamp_known(&self, keys: &EntryKeys, write: &mut EntryWrite<'_>) {
        let Some(near) = self.near() else {
            return;
        };
        let tags = keys.tags().iter().map(|tag| tag.as_str());
        if let Some(versions) = near.watches().versions(tags) {
            let versions: Vec<Option<Version>> = versions.into_iter().map(Some).collect();
            write.observed = keys.observe(&versions);
        }
    }

    /// Registers the read of `keys` as a fill of `named`, before it is sent.
    pub(crate) fn near_fill<S: AsRef<str>>(
        &self,
        named: Option<&Named<'_, S>>,
        keys: &EntryKeys,
    ) -> Option<Fill> {
        self.near()?.fill_entry(named?, keys)
    }

    /// A low-level read's start: the near cache's entry, or the keys to read (with the read
    /// registered as a fill when there is a near cache).
    pub(crate) fn begin_get<T: DeserializeOwned>(
        &self,
        key: &str,
        tags: impl IntoTags,
    ) -> Begun<T> {
        // Inline: the usual few tags cost no allocation.
        let tags: SmallVec<[_; 4]> = tags.into_tags().collect();
        let named = self.named("", key.as_bytes(), &tags);
        let near = named.as_ref().zip(self.near()).and_then(|(named, near)| {
            near.answer(named, |kept| match kept.value() {
                NearValue::Section(section) => {
                    Some(self.decode(section).ok_or(CacheMiss::UNDECODABLE))
                }
                NearValue::Decoded(_) => None,
            })
        });
        if let Some(value) = near {
            return Begun::Near(value);
        }
        let keys = self.entry_keys(&[key], &tags, Vec::new());
        let fill = self.near_fill(named.as_ref(), &keys);
        Begun::Read(keys, fill)
    }

    /// Reads `keys`, keeping what a fill finds near.
    pub(crate) fn near_read<'a>(&'a self, keys: &'a EntryKeys, fill: Option<Fill>) -> NearRead<'a> {
        NearRead {
            cache: self,
            read: self.read_flow(keys).asking_expiry(fill.is_some()),
            fill,
        }
    }

    /// Keeps the value section a low-level read found, if it was a fill.
    pub(crate) fn keep_section(&self, fill: Option<Fill>, lookup: &Lookup) {
        if let (Some(near), Some(fill), Lookup::Hit(payload, observed)) =
            (self.near(), fill, lookup)
        {
            let section = NearValue::Section(Box::from(&payload[..]));
            let versions = observed.all().map(|(_, version)| *version);
            near.keep(fill, section, payload.expiry(), versions);
        }
    }

    /// Reports a low-level read the near cache answered with `value`.
    pub(crate) fn near_answered<T>(
        &self,
        value: Result<T, CacheMiss>,
        timer: metrics::Timer,
    ) -> Result<T, CacheMiss> {
        self.count_near_hit();
        metrics::call(&self.inner.settings.namespace, "get", true, timer.elapsed());
        value
    }

    /// After `operation` was sent (landed or not): what it changed is no longer kept near.
    pub(crate) fn changed(&self, operation: &Operation<'_>) {
        if let Some(near) = self.near() {
            near.changed_by(operation);
        }
    }
}
