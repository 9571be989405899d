//! The in-process backend: the same keys, versions and entry format as Redis, in two hash maps.
//!
//! One mutex guards both maps, so every operation is atomic, as a Lua script would be on Redis.
//! Expired items are dropped when read, and in a sweep that runs whenever the maps have doubled
//! since the last sweep, so memory held by expired entries is freed in amortised O(1) per write.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::Expiry;
use crate::engine::{EntryWrite, ManyReply, Operation, ReadReply, Reply, Ttl};
use crate::error::BackendError;
use crate::format::{self, Observed, TagKey, Version};

/// Below this many items no sweep runs.
const MIN_SWEEP_SIZE: usize = 1024;

pub(crate) struct MemoryStore {
    maps: Mutex<Maps>,
}

struct Maps {
    /// Bounded by `max_entries` when it is set: quick_cache evicts beyond it.
    entries: quick_cache::unsync::Cache<String, Expiring<Vec<u8>>>,
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

/// The bound of a store built without `max_entries`: only lifetimes bound it.
const UNBOUNDED: usize = usize::MAX >> 4;

impl MemoryStore {
    /// A store of at most about `max_entries` entries (`None`: only lifetimes bound it).
    pub(crate) fn new(max_entries: Option<u64>) -> Self {
        let capacity =
            max_entries.map_or(UNBOUNDED, |max| usize::try_from(max).unwrap_or(UNBOUNDED));
        Self {
            maps: Mutex::new(Maps {
                entries: quick_cache::unsync::Cache::new(capacity),
                tags: HashMap::new(),
                size_after_sweep: 0,
            }),
        }
    }

    /// Answers one operation at once, under the store's lock (so each is atomic, as a script is
    /// on Redis).
    pub(crate) fn execute(&self, operation: Operation<'_>) -> Result<Reply, BackendError> {
        self.execute_at(operation, Instant::now())
    }

    /// Answers one operation as at `now` (the clock's time, or a simulator's virtual time).
    pub(crate) fn execute_at(
        &self,
        operation: Operation<'_>,
        now: Instant,
    ) -> Result<Reply, BackendError> {
        let mut maps = self.lock();
        let reply = match operation {
            // The entry's time to live costs nothing here, so it is told whether asked for or
            // not; the near cache's expiry (every key's) only when asked.
            Operation::Read {
                entry,
                tags,
                expiry,
                ..
            } => Reply::Read(ReadReply {
                entry: maps.entry_bytes(entry, now),
                versions: tags.iter().map(|tag| maps.version(tag, now)).collect(),
                ttl: maps.entry_ttl(entry, now),
                expiry: if expiry {
                    maps.expiry(entry, tags, now)
                } else {
                    Expiry::Unknown
                },
            }),
            Operation::ReadTags { tags, ttls_of } => {
                let versions = tags.iter().map(|tag| maps.version(tag, now)).collect();
                match ttls_of {
                    [] => Reply::Versions(versions),
                    entries => Reply::VersionsAndTtls(
                        versions,
                        entries
                            .iter()
                            .map(|entry| maps.entry_ttl(entry, now))
                            .collect(),
                    ),
                }
            }
            Operation::CreateTags { tags, lifetime } => {
                Reply::Created(maps.create_tags(tags, lifetime, now))
            }
            Operation::ReadMany { entries, tags } => Reply::Many(ManyReply {
                entries: entries
                    .iter()
                    .map(|entry| maps.entry_bytes(entry, now))
                    .collect(),
                versions: tags.iter().map(|tag| maps.version(tag, now)).collect(),
            }),
            Operation::WriteStamped {
                writes,
                lifetime,
                tag_lifetime,
            } => {
                let stamped = writes
                    .iter()
                    .map(|write| {
                        let mut observed = write.observed.clone();
                        let versions = maps.create_tags(&observed.proposals(), tag_lifetime, now);
                        observed.fill(&versions);
                        encode(&observed, write.payload)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                maps.insert_entries(writes, stamped, lifetime, now);
                Reply::Done(true)
            }
            Operation::Write { writes, lifetime } => {
                let stamped = writes
                    .iter()
                    .map(|write| encode(&write.observed, write.payload))
                    .collect::<Result<Vec<_>, _>>()?;
                maps.insert_entries(writes, stamped, lifetime, now);
                Reply::Done(true)
            }
            Operation::WriteUnlessDeleted {
                entry,
                observed,
                payload,
                lifetime,
                stale_window,
            } => {
                let bytes = format::encode_with_window(observed, stale_window, payload)
                    .ok_or(BackendError::TooManyTags)?;
                let lifetime = lifetime.map(|lifetime| lifetime.saturating_add(stale_window));
                // A delete since the writer read wins.
                let guard = Guard::Lineage(observed.tombstone.as_deref());
                Reply::Done(maps.store(entry, bytes, lifetime, guard, now))
            }
            Operation::Delete {
                entry,
                tombstone,
                lifetime,
            } => {
                let old = maps.entry_bytes(entry, now);
                // The simulator's `tombstone` mutant: a plain delete, no tombstone left.
                #[cfg(feature = "simulation")]
                if crate::mutants::active(crate::mutants::Mutant::Tombstone) {
                    maps.entries.remove(entry);
                    return Ok(Reply::Done(old.is_some_and(|old| format::is_live(&old))));
                }
                maps.insert_entry(entry, tombstone.to_vec(), lifetime, now);
                Reply::Done(old.is_some_and(|old| format::is_live(&old)))
            }
            Operation::Invalidate { tags, lifetime } => {
                for (tag, version) in tags {
                    maps.tags.insert(
                        tag.as_str().to_owned(),
                        Expiring::new(*version, lifetime, now),
                    );
                }
                maps.sweep_if_grown(now);
                Reply::Ok
            }
            Operation::Acquire { .. }
            | Operation::Release { .. }
            | Operation::WaitForWake { .. } => return Err(BackendError::NotShared),
        };
        Ok(reply)
    }

    /// Entries held right now, expired ones not yet swept included.
    pub(crate) fn entry_count(&self) -> usize {
        self.lock().entries.len()
    }

    /// Drops every entry and tag (a simulated `FLUSHALL`).
    #[cfg(feature = "simulation")]
    pub(crate) fn clear(&self) {
        let mut maps = self.lock();
        maps.entries.clear();
        maps.tags.clear();
        maps.size_after_sweep = 0;
    }

    /// The tag `key`'s version and when it expires (`None`: no such tag alive at `now`), read
    /// without touching the store (the simulator's in-band tracking compares it).
    #[cfg(feature = "simulation")]
    pub(crate) fn tag_at(&self, key: &str, now: Instant) -> Option<(Version, Option<Instant>)> {
        let maps = self.lock();
        let stored = maps.tags.get(key).filter(|stored| stored.alive(now))?;
        Some((stored.value, stored.expires))
    }

    /// Stores `bytes` under the entry key `key` as they are, for `lifetime` (a simulated plain
    /// `SET`: a `set` whose tags' versions its connection knows in-band).
    #[cfg(feature = "simulation")]
    pub(crate) fn put(&self, key: &str, bytes: Vec<u8>, lifetime: Option<Duration>, now: Instant) {
        self.lock().insert_entry(key, bytes, lifetime, now);
    }

    /// Evicts the entry or tag `key` (a simulated `maxmemory` eviction), unless it holds a
    /// delete's lineage (a tombstone, or an entry written over one) and `lineages` is false.
    /// Returns whether a key went.
    #[cfg(feature = "simulation")]
    pub(crate) fn evict(&self, key: &str, lineages: bool, now: Instant) -> bool {
        let mut maps = self.lock();
        if maps.tags.remove(key).is_some() {
            return true;
        }
        match maps.entry_bytes(key, now) {
            Some(bytes) if lineages || format::lineage(&bytes).is_none() => {
                maps.entries.remove(key);
                true
            }
            _ => false,
        }
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

/// Which stored entry a write may replace (as the stamped-write script's guard).
#[derive(Clone, Copy)]
enum Guard<'a> {
    /// Any (a `set`: its value is fresh now).
    Any,
    /// Only one of the lineage its writer read before computing (`None`: of none, or no key).
    Lineage(Option<&'a [u8]>),
}

fn encode(observed: &Observed, payload: &[u8]) -> Result<Vec<u8>, BackendError> {
    format::encode(observed, payload).ok_or(BackendError::TooManyTags)
}

impl Maps {
    /// What is left of an entry's time to live (zero when there is none).
    fn entry_ttl(&self, key: &str, now: Instant) -> Ttl {
        match self.entries.get(key) {
            Some(stored) => match stored.expires {
                None => Ttl::Forever,
                Some(expires) => Ttl::Left(expires.saturating_duration_since(now)),
            },
            None => Ttl::Left(Duration::ZERO),
        }
    }

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

    /// When the first of the entry and its tags expires (a missing one: now).
    fn expiry(&self, entry: &str, tags: &[TagKey], now: Instant) -> Expiry {
        let left = |expires: Option<Instant>| match expires {
            None => Expiry::Never,
            Some(expires) => Expiry::After(expires.saturating_duration_since(now)),
        };
        let gone = Expiry::After(Duration::ZERO);
        let entry = self
            .entries
            .get(entry)
            .map_or(gone, |stored| left(stored.expires));
        tags.iter().fold(entry, |expiry, tag| {
            let tag = self
                .tags
                .get(tag.as_str())
                .map_or(gone, |stored| left(stored.expires));
            expiry.min(tag)
        })
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

    fn insert_entry(
        &mut self,
        key: &str,
        bytes: Vec<u8>,
        lifetime: Option<Duration>,
        now: Instant,
    ) {
        self.entries
            .insert(key.to_owned(), Expiring::new(bytes, lifetime, now));
        self.sweep_if_grown(now);
    }

    /// Every entry of a batch, once each is encoded (so that a batch is written whole or not
    /// at all); the later of two writes of one entry stays.
    fn insert_entries(
        &mut self,
        writes: &[EntryWrite<'_>],
        stamped: Vec<Vec<u8>>,
        lifetime: Option<Duration>,
        now: Instant,
    ) {
        for (write, bytes) in writes.iter().zip(stamped) {
            self.store(write.entry, bytes, lifetime, Guard::Any, now);
        }
    }

    /// Stores `bytes` under `key` unless `guard` refuses what is there (returns whether it
    /// stored them), as the stamped-write script does (`write_stamped.lua`). Where an entry of a
    /// lineage is (a tombstone, or an entry written over one: `format::lineage`), the bytes
    /// descend from it, and live at least as long as it had left, their stale window widened
    /// by as much: a delete's guard lasts its tombstone's lifetime, however short the lives of
    /// the values written over it, which are fresh no longer than their own lifetime says.
    fn store(
        &mut self,
        key: &str,
        bytes: Vec<u8>,
        lifetime: Option<Duration>,
        guard: Guard<'_>,
        now: Instant,
    ) -> bool {
        let current = self.entry_bytes(key, now);
        let lineage = current.as_deref().and_then(format::lineage);
        if let Guard::Lineage(read) = guard {
            let deleted_since = match current {
                Some(_) => lineage.as_deref() != read,
                // The lineage the writer read expired or was lost.
                None => read.is_some(),
            };
            if deleted_since {
                return false;
            }
        }
        let (bytes, lifetime) = match lineage {
            Some(tombstone) => {
                let (widen, lifetime) = match (lifetime, self.entry_ttl(key, now)) {
                    (Some(lifetime), Ttl::Left(left)) if left > lifetime => {
                        (left - lifetime, Some(left))
                    }
                    _ => (Duration::ZERO, lifetime),
                };
                (format::descended(bytes, &tombstone, widen), lifetime)
            }
            None => (bytes, lifetime),
        };
        self.insert_entry(key, bytes, lifetime, now);
        true
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
