//! [`TaggedCache`]: the public API, sync and async.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use self::flights::Flights;
use self::near::Begun;
use crate::backend::redis::Tracker;
use crate::backend::Backend;
use crate::engine::{EntryWrite, Single, WriteFlow};
use crate::error::{CacheMiss, ConfigError};
use crate::format;
use crate::format::{EntryKeys, KeySpace, TagKey, Version};
use crate::lifetime::Lifetime;
use crate::metrics;
use crate::near::NearCache;
use crate::settings::{Settings, Storage};
use crate::stats::{CacheStats, Counters};
use crate::tags::IntoTags;
use crate::warnings::WarnLimiter;

/// The empty tag set, for entries that carry no tag of their own.
///
/// ```
/// use rtc::{Lifetime, TaggedCache, NO_TAGS};
///
/// let cache = TaggedCache::builder().in_memory().build().unwrap();
/// assert!(cache.set("answer", &42, NO_TAGS, Lifetime::Default));
/// assert_eq!(cache.get::<i32>("answer", NO_TAGS), Ok(42));
/// ```
pub const NO_TAGS: [&str; 0] = [];

/// How many decoded values the in-memory backend keeps for `#[cached]` functions by default.
const DECODED_IN_MEMORY: u64 = 10_000;

/// How often one kind of warning may be logged.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A cache of values under keys, each entry carrying tags; invalidating a tag makes every entry
/// that carries it miss, in one round trip whatever their number.
///
/// An entry is identified by its key **and** its set of tags (order and repeats do not matter).
/// Values are stored as JSON, or in the builder's [`Codec`](crate::Codec). Every method fails open: when the backend cannot be reached, reads
/// miss and writes return `false`, with a rate-limited `tracing` warning; nothing panics.
///
/// `TaggedCache` is cheap to clone; clones share connections, settings and counters.
///
/// ```
/// use rtc::{Lifetime, TaggedCache};
///
/// let cache = TaggedCache::builder().in_memory().build().unwrap();
/// cache.set("user:42", &"Ada", ["user:42", "users"], Lifetime::Default);
/// assert_eq!(cache.get::<String>("user:42", ["users", "user:42"]).as_deref(), Ok("Ada"));
///
/// cache.invalidate(["users"]);
/// assert!(cache.get::<String>("user:42", ["users", "user:42"]).is_err());
/// ```
#[derive(Clone)]
pub struct TaggedCache {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    keys: KeySpace,
    backend: Backend,
    counters: Counters,
    backend_warnings: WarnLimiter,
    codec_warnings: WarnLimiter,
    flights: Flights,
    /// Each decorated function's own tag, by its identity (`Site::identity`).
    function_tags: RwLock<HashMap<&'static str, TagKey, foldhash::fast::RandomState>>,
    near: Option<Arc<NearCache>>,
    /// Feeds `near` Redis's invalidation messages; stops when the cache is dropped.
    _tracker: Option<Tracker>,
}

impl fmt::Debug for TaggedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedCache")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl TaggedCache {
    pub(crate) fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        let backend = Backend::open(&settings)?;
        let keys = KeySpace::new(&settings.namespace);
        let (near, tracker) = match (&settings.storage, settings.near) {
            (Storage::Memory, _) => {
                // Every change to the in-memory backend goes through this cache's drivers, so
                // its decoded values are always coherent.
                let near = NearCache::new(settings.max_entries.unwrap_or(DECODED_IN_MEMORY), None);
                near.trust();
                (Some(Arc::new(near)), None)
            }
            (_, Some(settings_near)) => {
                let near = Arc::new(NearCache::new(
                    settings_near.max_entries,
                    settings_near.max_age,
                ));
                let tracker = crate::backend::redis::track(
                    &settings,
                    backend.redis(),
                    &near,
                    keys.tracked_prefixes(),
                )?;
                (Some(near), Some(tracker))
            }
            (_, None) => (None, None),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                settings,
                backend,
                counters: Counters::default(),
                backend_warnings: WarnLimiter::new(WARN_INTERVAL),
                codec_warnings: WarnLimiter::new(WARN_INTERVAL),
                flights: Flights::default(),
                function_tags: RwLock::default(),
                near,
                _tracker: tracker,
            }),
        })
    }

    /// This cache's namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.settings.namespace
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> CacheStats {
        let mut stats = self.inner.counters.snapshot();
        stats.pipelined_reads = self.inner.backend.pipelined_reads();
        stats
    }

    /// True while the near cache is in use: tracking is on, so hits may be answered from this
    /// process's memory. False without a near cache, before its tracking connection is set
    /// up, and from the moment it is lost until it is back (hits then go to Redis).
    pub fn near_cache_active(&self) -> bool {
        self.near().is_some_and(|near| near.watches().is_trusted())
    }

    /// How many entries the in-memory backend holds (expired ones not yet freed included);
    /// `None` for the other backends.
    pub fn local_entry_count(&self) -> Option<usize> {
        self.inner.backend.memory().map(|store| store.entry_count())
    }

    /// Frees every expired entry and tag of the in-memory backend now (it also does so by
    /// itself as it grows); does nothing for the other backends.
    pub fn purge_expired(&self) {
        if let Some(store) = self.inner.backend.memory() {
            store.purge_expired();
        }
    }

    /// Stores `value` under `key` and `tags` for `lifetime`: [`Lifetime::Default`] (the
    /// builder's [`default_lifetime`](crate::TaggedCacheBuilder::default_lifetime)),
    /// [`Lifetime::Never`], or a `Duration`. Returns whether it was stored: `false` when the
    /// value does not serialize, the backend cannot be reached, or the lifetime is zero (each
    /// with a warning).
    ///
    /// On Redis this is one round trip: a script creates the tags that have no version yet and
    /// stamps the entry with every tag's current version.
    pub fn set<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        tags: impl IntoTags,
        lifetime: impl Into<Lifetime>,
    ) -> bool {
        let lifetime = lifetime.into();
        let Some((keys, payload)) = self.lone_entry(key.as_ref(), value, tags, lifetime) else {
            return false;
        };
        let stored = self.drive(self.lone_write(&keys, &payload, lifetime));
        self.count_write(stored)
    }

    /// Async twin of [`TaggedCache::set`].
    pub async fn set_async<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        tags: impl IntoTags,
        lifetime: impl Into<Lifetime>,
    ) -> bool {
        let lifetime = lifetime.into();
        let Some((keys, payload)) = self.lone_entry(key.as_ref(), value, tags, lifetime) else {
            return false;
        };
        let stored = self
            .drive_async(self.lone_write(&keys, &payload, lifetime))
            .await;
        self.count_write(stored)
    }

    /// A `set`'s keys and encoded value; `None` when the value does not encode or the lifetime
    /// is zero (warned).
    fn lone_entry<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        tags: impl IntoTags,
        lifetime: Lifetime,
    ) -> Option<(EntryKeys, Vec<u8>)> {
        if !self.lifetime_usable(lifetime) {
            return None;
        }
        let payload = self.encode(value)?;
        Some((
            self.entry_keys(&[key], tags.into_tags(), Vec::new()),
            payload,
        ))
    }

    /// A `set`'s write, stamped with the tag versions the near cache knows (if any).
    fn lone_write<'a>(
        &self,
        keys: &'a EntryKeys,
        payload: &'a [u8],
        lifetime: Lifetime,
    ) -> WriteFlow<'a> {
        let mut write = EntryWrite::unstamped(keys, payload);
        self.stamp_known(keys, &mut write);
        self.write_flow(vec![write], lifetime)
    }

    /// The value stored under `key` and exactly this set of `tags`, if no tag was invalidated
    /// since it was written. One round trip, whatever the number of tags.
    ///
    /// # Errors
    /// [`CacheMiss`] when there is no fresh entry, when it does not decode as `T`, or when the
    /// backend could not be reached.
    pub fn get<T: DeserializeOwned>(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoTags,
    ) -> Result<T, CacheMiss> {
        let timer = metrics::Timer::start();
        let (keys, fill) = match self.begin_get(key.as_ref(), tags) {
            Begun::Near(value) => return self.near_answered(value, timer),
            Begun::Read(keys, fill) => (keys, fill),
        };
        let lookup = self.drive(self.near_read(&keys, fill));
        self.value_of(lookup, timer)
    }

    /// Async twin of [`TaggedCache::get`].
    ///
    /// # Errors
    /// As [`TaggedCache::get`].
    pub async fn get_async<T: DeserializeOwned>(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoTags,
    ) -> Result<T, CacheMiss> {
        let timer = metrics::Timer::start();
        let (keys, fill) = match self.begin_get(key.as_ref(), tags) {
            Begun::Near(value) => return self.near_answered(value, timer),
            Begun::Read(keys, fill) => (keys, fill),
        };
        let lookup = self.drive_async(self.near_read(&keys, fill)).await;
        self.value_of(lookup, timer)
    }

    /// The value of the fresh entry under `key` and exactly this set of `tags` as its codec
    /// serialized it (JSON unless it was written with another [`Codec`](crate::Codec) or a custom
    /// `serializer`; decompressed when it was compressed), not decoded: for tools that show what
    /// an entry holds, whatever its type. One round trip, as [`TaggedCache::get`].
    ///
    /// ```
    /// use rtc::{Lifetime, TaggedCache, NO_TAGS};
    ///
    /// let cache = TaggedCache::builder().in_memory().build().unwrap();
    /// cache.set("answer", &42, NO_TAGS, Lifetime::Default);
    /// assert_eq!(cache.get_bytes("answer", NO_TAGS).as_deref(), Ok(&b"42"[..]));
    /// ```
    ///
    /// # Errors
    /// [`CacheMiss`] when there is no fresh entry or when the backend could not be reached.
    pub fn get_bytes(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoTags,
    ) -> Result<Vec<u8>, CacheMiss> {
        let timer = metrics::Timer::start();
        let keys = self.entry_keys(&[key.as_ref()], tags.into_tags(), Vec::new());
        let lookup = self.drive(self.read_flow(&keys));
        let payload = self.payload_of(lookup, timer)?;
        crate::codec::body(&payload)
            .map(|body| body.into_owned())
            .map_err(|_| CacheMiss::UNDECODABLE)
    }

    /// Removes the entry stored under `key` and exactly this set of `tags`; true if one was removed.
    pub fn delete(&self, key: impl AsRef<str>, tags: impl IntoTags) -> bool {
        let keys = self.entry_keys(&[key.as_ref()], tags.into_tags(), Vec::new());
        let tombstone = format::tombstone();
        let reply = self.drive(Single::new(self.delete_operation(&keys, &tombstone)));
        self.count_delete(reply)
    }

    /// Async twin of [`TaggedCache::delete`].
    pub async fn delete_async(&self, key: impl AsRef<str>, tags: impl IntoTags) -> bool {
        let keys = self.entry_keys(&[key.as_ref()], tags.into_tags(), Vec::new());
        let tombstone = format::tombstone();
        let delete = self.delete_operation(&keys, &tombstone);
        let reply = self.drive_async(Single::new(delete)).await;
        self.count_delete(reply)
    }

    /// Makes every entry carrying any of `tags` miss from now on: one round trip, O(1) in the
    /// number of entries. Returns whether the backend took the invalidation.
    pub fn invalidate(&self, tags: impl IntoTags) -> bool {
        self.invalidate_tags(self.user_tags_renewed(tags))
    }

    /// Async twin of [`TaggedCache::invalidate`].
    pub fn invalidate_async(&self, tags: impl IntoTags) -> impl Future<Output = bool> + '_ {
        self.invalidate_tags_async(self.user_tags_renewed(tags))
    }

    /// Makes every entry of this namespace miss from now on (every entry carries the namespace's
    /// own tag). One round trip.
    pub fn invalidate_all(&self) -> bool {
        self.invalidate_tags(self.new_versions([self.inner.keys.namespace_tag()]))
    }

    /// Async twin of [`TaggedCache::invalidate_all`].
    pub fn invalidate_all_async(&self) -> impl Future<Output = bool> + '_ {
        self.invalidate_tags_async(self.new_versions([self.inner.keys.namespace_tag()]))
    }

    /// The keys of the user's `tags`, each with a new version.
    fn user_tags_renewed(&self, tags: impl IntoTags) -> Vec<(TagKey, Version)> {
        self.new_versions(
            tags.into_tags()
                .map(|tag| self.inner.keys.user_tag(tag.as_ref())),
        )
    }

    /// Gives each tag its new version, in one round trip: what every invalidation is (of user
    /// tags, of the namespace, of a decorated function). Counted; whether the backend took it.
    pub(crate) fn invalidate_tags(&self, new_versions: Vec<(TagKey, Version)>) -> bool {
        let reply = self.drive(Single::new(self.invalidate_operation(&new_versions)));
        self.count_invalidation(reply)
    }

    /// Async twin of [`TaggedCache::invalidate_tags`].
    pub(crate) async fn invalidate_tags_async(&self, new_versions: Vec<(TagKey, Version)>) -> bool {
        let invalidate = Single::new(self.invalidate_operation(&new_versions));
        let reply = self.drive_async(invalidate).await;
        self.count_invalidation(reply)
    }

    /// The pattern every Redis key of this cache's namespace matches (`rtc:?:<namespace id>:*`),
    /// for an ACL rule that confines a user to the namespace, or for `SCAN`.
    ///
    /// ```
    /// let cache = rtc::TaggedCache::builder().namespace("shop").in_memory().build().unwrap();
    /// assert!(cache.key_pattern().starts_with("rtc:?:"));
    /// // ACL SETUSER shop on >password ~<pattern> +@read +@write +@scripting -@dangerous
    /// ```
    pub fn key_pattern(&self) -> String {
        self.inner.keys.pattern()
    }
}

mod batch;
mod drive;
pub(crate) mod flights;
mod near;
mod operations;
mod ping;
mod reporting;

pub use self::ping::{PingError, PingErrorKind};
