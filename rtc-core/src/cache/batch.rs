//! Batches: many entries read or written in one round trip.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::TaggedCache;
use crate::engine::EntryWrite;
use crate::error::CacheMiss;
use crate::format::EntryKeys;
use crate::lifetime::Lifetime;
use crate::metrics;
use crate::tags::IntoTags;

impl TaggedCache {
    /// The values of many entries, each given as its key and its set of tags (as for
    /// [`TaggedCache::get`]), read together: one result per entry, in the order given. An entry
    /// given twice is read once and answered twice; an empty batch sends nothing.
    ///
    /// On one Redis server this is **one round trip**: a single `MGET` of every entry and of
    /// every tag they carry, each tag once however many entries carry it. On a cluster, one
    /// `GET` per key, all in flight at once (a round trip per shard, concurrently). Entries
    /// written by a `#[cached]` function carry its own tag too; finding such entries costs one
    /// more round trip, for all of them together.
    ///
    /// Each entry counts as one hit or one miss in [`TaggedCache::stats`], as a `get` does.
    /// When the backend fails, every entry misses (and one warning is logged).
    ///
    /// ```
    /// use rtc::{Lifetime, MissKind, TaggedCache};
    ///
    /// let cache = TaggedCache::builder().in_memory().build().unwrap();
    /// cache.set("user:1", &"Ada", ["users"], Lifetime::Default);
    /// cache.set("user:2", &"Grace", ["users"], Lifetime::Default);
    ///
    /// let names = cache.get_many::<String>([
    ///     ("user:1", ["users"]),
    ///     ("user:3", ["users"]),
    ///     ("user:2", ["users"]),
    /// ]);
    /// assert_eq!(names, [Ok("Ada".to_owned()), Err(MissKind::Absent.into()), Ok("Grace".to_owned())]);
    ///
    /// // Keys and tags built on the fly, each entry with tags of its own.
    /// let ids = [1, 2];
    /// let names = cache.get_many::<String>(ids.iter().map(|id| (format!("user:{id}"), "users")));
    /// assert!(names.iter().all(Result::is_ok));
    /// ```
    pub fn get_many<T: DeserializeOwned>(
        &self,
        entries: impl IntoIterator<Item = (impl AsRef<str>, impl IntoTags)>,
    ) -> Vec<Result<T, CacheMiss>> {
        let timer = metrics::Timer::start();
        let keys = self.keys_of_batch(entries);
        let lookups = self.drive(self.read_many_flow(&keys));
        self.values_of(lookups, timer)
    }

    /// Async twin of [`TaggedCache::get_many`].
    pub async fn get_many_async<T: DeserializeOwned>(
        &self,
        entries: impl IntoIterator<Item = (impl AsRef<str>, impl IntoTags)>,
    ) -> Vec<Result<T, CacheMiss>> {
        let timer = metrics::Timer::start();
        let keys = self.keys_of_batch(entries);
        let lookups = self.drive_async(self.read_many_flow(&keys)).await;
        self.values_of(lookups, timer)
    }

    /// Stores many values, each given as its key, the value and its tags (as for
    /// [`TaggedCache::set`]), all with one [`Lifetime`] (a zero one stores nothing, with a
    /// warning). Returns, in the order given,
    /// whether each entry was stored: a value that cannot be serialized is `false` and the
    /// others are still written; when the backend fails, nothing is stored and every entry is
    /// `false` (one warning is logged), as when one entry carries more than [`crate::MAX_TAGS`]
    /// tags. The entries are written in order, so of an entry given twice the later value stays.
    ///
    /// On one Redis server this is **one round trip**: one call of a script that reads (or
    /// creates) each tag's version once and writes every entry stamped with them, atomically.
    /// On a cluster, where the entries and tags live on different shards, it is two: every tag
    /// is created first (as [`TaggedCache::set`] does there), then one `SET` per entry, each
    /// round sent to every shard involved at once.
    ///
    /// ```
    /// use rtc::{Lifetime, TaggedCache};
    ///
    /// let cache = TaggedCache::builder().in_memory().build().unwrap();
    /// let users = [(1, "Ada"), (2, "Grace")];
    /// let stored = cache.set_many(
    ///     users
    ///         .iter()
    ///         .map(|(id, name)| (format!("user:{id}"), name, [format!("user:{id}"), "users".into()])),
    ///     Lifetime::Default,
    /// );
    /// assert_eq!(stored, [true, true]);
    /// assert_eq!(cache.get::<String>("user:2", ["users", "user:2"]).as_deref(), Ok("Grace"));
    /// assert_eq!(cache.stats().sets, 2);
    /// ```
    pub fn set_many<'v, T: Serialize + ?Sized + 'v>(
        &self,
        entries: impl IntoIterator<Item = (impl AsRef<str>, &'v T, impl IntoTags)>,
        lifetime: impl Into<Lifetime>,
    ) -> Vec<bool> {
        let lifetime = lifetime.into();
        let batch = self.encoded_batch(entries, lifetime);
        let stored = self.drive(self.write_flow(batch.writes(), lifetime));
        self.count_writes(batch.encoded, stored)
    }

    /// Async twin of [`TaggedCache::set_many`].
    pub async fn set_many_async<'v, T: Serialize + ?Sized + 'v>(
        &self,
        entries: impl IntoIterator<Item = (impl AsRef<str>, &'v T, impl IntoTags)>,
        lifetime: impl Into<Lifetime>,
    ) -> Vec<bool> {
        let lifetime = lifetime.into();
        let batch = self.encoded_batch(entries, lifetime);
        let stored = self
            .drive_async(self.write_flow(batch.writes(), lifetime))
            .await;
        self.count_writes(batch.encoded, stored)
    }

    fn keys_of_batch(
        &self,
        entries: impl IntoIterator<Item = (impl AsRef<str>, impl IntoTags)>,
    ) -> Vec<EntryKeys> {
        entries
            .into_iter()
            .map(|(key, tags)| self.entry_keys(&[key.as_ref()], tags.into_tags(), Vec::new()))
            .collect()
    }

    fn encoded_batch<'v, T: Serialize + ?Sized + 'v>(
        &self,
        entries: impl IntoIterator<Item = (impl AsRef<str>, &'v T, impl IntoTags)>,
        lifetime: Lifetime,
    ) -> EncodedBatch {
        let mut batch = EncodedBatch::default();
        let usable = self.lifetime_usable(lifetime);
        for (key, value, tags) in entries {
            let payload = usable.then(|| self.encode(value)).flatten();
            batch.encoded.push(payload.is_some());
            if let Some(payload) = payload {
                let keys = self.entry_keys(&[key.as_ref()], tags.into_tags(), Vec::new());
                batch.entries.push((keys, payload));
            }
        }
        batch
    }
}

/// The entries of a `set_many` whose values could be serialized, and which could, in the order
/// given.
#[derive(Default)]
struct EncodedBatch {
    entries: Vec<(EntryKeys, Vec<u8>)>,
    encoded: Vec<bool>,
}

impl EncodedBatch {
    fn writes(&self) -> Vec<EntryWrite<'_>> {
        self.entries
            .iter()
            .map(|(keys, payload)| EntryWrite::unstamped(keys, payload))
            .collect()
    }
}
