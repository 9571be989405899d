//! The near cache as the public API and the decorated calls use it: look up, register a fill
//! before the read, keep what the read found, and drop what this process changes.

use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;

use super::TaggedCache;
use crate::engine::EntryWrite;
use crate::engine::{Lookup, Operation};
use crate::error::CacheMiss;
use crate::format::{EntryKeys, Observed, Version};
use crate::metrics;
use crate::near::{Expiry, Fill, Named, NearCache, NearEntry, NearValue};
use crate::stats::Counters;

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
        key: &'a str,
        tags: &'a [S],
    ) -> Option<Named<'a, S>> {
        self.near()?;
        Some(Named::new(function, key, tags))
    }

    /// The fresh near entry `named` names, if there is one.
    pub(crate) fn near_hit<S: AsRef<str>>(
        &self,
        named: Option<&Named<'_, S>>,
    ) -> Option<Arc<NearEntry>> {
        self.near()?.get(named?, Instant::now())
    }

    /// Counts a call answered by the near cache: a hit, and a near hit.
    pub(crate) fn count_near_hit(&self) {
        Counters::bump(&self.inner.counters.hits);
        Counters::bump(&self.inner.counters.near_hits);
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
            let versions = observed.all().map(|(_, version)| *version);
            near.keep(fill, NearValue::Decoded(value), expiry, versions);
        }
    }

    /// `write` stamped with the versions this process knows its tags have (from reads whose
    /// watches live), so that it is written with one plain `SET` instead of the script that
    /// reads the versions where the entry lands. A version that has just changed elsewhere only
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
        let watched =
            std::iter::once(keys.entry.as_str()).chain(keys.tags().iter().map(|tag| tag.as_str()));
        self.near()?.fill(named?, watched)
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

    /// A low-level read answered near: counted as a hit, and decoded as `T`.
    pub(crate) fn near_value_of<T: DeserializeOwned>(
        &self,
        entry: &NearEntry,
        timer: metrics::Timer,
    ) -> Result<T, CacheMiss> {
        self.count_near_hit();
        metrics::call(&self.inner.settings.namespace, "get", true, timer.elapsed());
        match entry.value() {
            NearValue::Section(section) => self.decode(section).ok_or(CacheMiss),
            NearValue::Decoded(_) => Err(CacheMiss),
        }
    }

    /// After `operation` was sent (landed or not): what it changed is no longer kept near.
    pub(crate) fn changed(&self, operation: &Operation<'_>) {
        if let Some(near) = self.near() {
            let keys = operation.changed_keys();
            if !keys.is_empty() {
                near.watches().changed(keys);
            }
        }
    }
}
