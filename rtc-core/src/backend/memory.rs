//! The in-process backend: the same keys, versions and entry format as Redis, in two hash maps.
//!
//! One mutex guards both maps, so every operation is atomic, as a Lua script would be on Redis.
//! Expired items are dropped when read, and in a sweep that runs whenever the maps have doubled
//! since the last sweep, so memory held by expired entries is freed in amortised O(1) per write.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::ReadReply;
use crate::entry::{self, Observed};
use crate::keys::TagKey;
use crate::version::Version;

/// Below this many items no sweep runs.
const MIN_SWEEP_SIZE: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    maps: Mutex<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    entries: HashMap<String, Expiring<Vec<u8>>>,
    tags: HashMap<String, Expiring<Version>>,
    size_after_sweep: usize,
}

#[derive(Debug)]
struct Expiring<T> {
    value: T,
    expires: Option<Instant>,
}

impl<T> Expiring<T> {
    fn new(value: T, lifetime: Option<Duration>, now: Instant) -> Self {
        Self {
            value,
            expires: lifetime.and_then(|lifetime| now.checked_add(lifetime)),
        }
    }

    fn alive(&self, now: Instant) -> bool {
        self.expires.is_none_or(|expires| expires > now)
    }
}

impl MemoryStore {
    pub(crate) fn read(&self, entry: &str, tags: &[TagKey]) -> ReadReply {
        let now = Instant::now();
        let mut maps = self.lock();
        let entry = maps.entry_bytes(entry, now);
        let versions = tags.iter().map(|tag| maps.version(tag, now)).collect();
        ReadReply { entry, versions }
    }

    pub(crate) fn read_tags(&self, tags: &[TagKey]) -> Vec<Option<Version>> {
        let now = Instant::now();
        let mut maps = self.lock();
        tags.iter().map(|tag| maps.version(tag, now)).collect()
    }

    /// Creates each tag that has no version with the proposed one; returns every tag's version.
    pub(crate) fn create_tags(
        &self,
        tags: &[(TagKey, Version)],
        lifetime: Option<Duration>,
    ) -> Vec<Version> {
        self.lock().create_tags(tags, lifetime, Instant::now())
    }

    /// Stamps the entry with every tag's current version (creating missing ones) and writes it,
    /// all under one lock.
    pub(crate) fn write_stamped(
        &self,
        entry: &str,
        mut observed: Observed,
        payload: &[u8],
        lifetime: Option<Duration>,
        tag_lifetime: Option<Duration>,
    ) -> bool {
        let now = Instant::now();
        let mut maps = self.lock();
        let proposals = observed.proposals();
        let versions = maps.create_tags(&proposals, tag_lifetime, now);
        observed.fill(&versions);
        let Some(bytes) = entry::encode(&observed, payload) else {
            return false;
        };
        maps.entries
            .insert(entry.to_owned(), Expiring::new(bytes, lifetime, now));
        maps.sweep_if_grown(now);
        true
    }

    /// Replaces the entry with a tombstone; true when a live entry was there.
    pub(crate) fn delete(
        &self,
        entry: &str,
        tombstone: Vec<u8>,
        lifetime: Option<Duration>,
    ) -> bool {
        let now = Instant::now();
        let mut maps = self.lock();
        let old = maps.entry_bytes(entry, now);
        maps.entries
            .insert(entry.to_owned(), Expiring::new(tombstone, lifetime, now));
        maps.sweep_if_grown(now);
        old.is_some_and(|old| entry::is_live(&old))
    }

    /// Writes the entry unless it was deleted after the writer read `seen`; true when written.
    pub(crate) fn write_unless_deleted(
        &self,
        entry: &str,
        bytes: Vec<u8>,
        lifetime: Option<Duration>,
        seen: Option<&[u8]>,
    ) -> bool {
        let now = Instant::now();
        let mut maps = self.lock();
        let deleted_since = maps.entry_bytes(entry, now).is_some_and(|current| {
            entry::is_tombstone(&current) && Some(current.as_slice()) != seen
        });
        if deleted_since {
            return false;
        }
        maps.entries
            .insert(entry.to_owned(), Expiring::new(bytes, lifetime, now));
        maps.sweep_if_grown(now);
        true
    }

    /// Gives each tag a new version (invalidation).
    pub(crate) fn bump(&self, tags: &[(TagKey, Version)], lifetime: Option<Duration>) {
        let now = Instant::now();
        let mut maps = self.lock();
        for (tag, version) in tags {
            maps.tags.insert(
                tag.as_str().to_owned(),
                Expiring::new(*version, lifetime, now),
            );
        }
        maps.sweep_if_grown(now);
    }

    /// Entries held right now, expired ones not yet swept included.
    pub(crate) fn entry_count(&self) -> usize {
        self.lock().entries.len()
    }

    /// Drops every expired entry and tag now.
    pub(crate) fn purge_expired(&self) {
        self.lock().sweep(Instant::now());
    }

    fn lock(&self) -> MutexGuard<'_, Maps> {
        // Every critical section leaves the maps consistent, so a poisoned lock is still usable.
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Maps {
    fn entry_bytes(&mut self, key: &str, now: Instant) -> Option<Vec<u8>> {
        match self.entries.get(key) {
            Some(stored) if stored.alive(now) => Some(stored.value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn version(&mut self, tag: &TagKey, now: Instant) -> Option<Version> {
        match self.tags.get(tag.as_str()) {
            Some(stored) if stored.alive(now) => Some(stored.value),
            Some(_) => {
                self.tags.remove(tag.as_str());
                None
            }
            None => None,
        }
    }

    fn create_tags(
        &mut self,
        tags: &[(TagKey, Version)],
        lifetime: Option<Duration>,
        now: Instant,
    ) -> Vec<Version> {
        tags.iter()
            .map(|(tag, proposed)| self.version_or_create(tag, *proposed, lifetime, now))
            .collect()
    }

    fn version_or_create(
        &mut self,
        tag: &TagKey,
        proposed: Version,
        lifetime: Option<Duration>,
        now: Instant,
    ) -> Version {
        if let Some(version) = self.version(tag, now) {
            return version;
        }
        self.tags.insert(
            tag.as_str().to_owned(),
            Expiring::new(proposed, lifetime, now),
        );
        proposed
    }

    fn sweep_if_grown(&mut self, now: Instant) {
        let size = self.entries.len() + self.tags.len();
        if size >= MIN_SWEEP_SIZE && size >= 2 * self.size_after_sweep {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, stored| stored.alive(now));
        self.tags.retain(|_, stored| stored.alive(now));
        self.size_after_sweep = self.entries.len() + self.tags.len();
    }
}
