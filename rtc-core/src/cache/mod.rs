//! [`TaggedCache`]: the public API, sync and async.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, MemoryStore, RedisStore, Timeouts};
use crate::config::{Settings, TaggedCacheBuilder, Target};
use crate::error::{CacheMiss, ConfigError};
use crate::flights::Flights;
use crate::health::WarnLimiter;
use crate::keys::{KeySpace, TagKey};
use crate::request::Lookup;
use crate::stats::{CacheStats, Counters};

/// The empty tag set, for entries that carry no tag of their own.
///
/// ```
/// use rtc::{TaggedCache, NO_TAGS};
///
/// let cache = TaggedCache::builder().in_local_memory(true).build().unwrap();
/// assert!(cache.set("answer", &42, NO_TAGS, None));
/// assert_eq!(cache.get::<i32>("answer", NO_TAGS), Ok(42));
/// ```
pub const NO_TAGS: [&str; 0] = [];

/// How often a cluster request is retried after a redirection or a lost node, before it counts
/// as failed (and the call goes on without the cache).
const CLUSTER_RETRIES: u32 = 3;

/// How often one kind of warning may be logged.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A cache of values under keys, each entry carrying tags; invalidating a tag makes every entry
/// that carries it miss, in one round trip whatever their number.
///
/// An entry is identified by its key **and** its set of tags (order and repeats do not matter).
/// Values are stored as JSON. Every method fails open: when the backend cannot be reached, reads
/// miss and writes return `false`, with a rate-limited `tracing` warning; nothing panics.
///
/// `TaggedCache` is cheap to clone; clones share connections, settings and counters.
///
/// ```
/// use rtc::TaggedCache;
///
/// let cache = TaggedCache::builder().in_local_memory(true).build().unwrap();
/// cache.set("user:42", &"Ada", ["user:42", "users"], None);
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
    /// Each decorated function's own tag, by (module, type, function).
    function_tags: RwLock<HashMap<(&'static str, &'static str, &'static str), TagKey>>,
}

impl fmt::Debug for TaggedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedCache")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl TaggedCache {
    /// Starts configuring a cache.
    pub fn builder() -> TaggedCacheBuilder {
        TaggedCacheBuilder::default()
    }

    pub(crate) fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        let timeouts = Timeouts {
            socket: settings.socket_timeout,
            connect: settings.connect_timeout,
        };
        let invalid = |error: redis::RedisError| ConfigError::InvalidUrl {
            reason: error.to_string(),
        };
        let backend = match &settings.target {
            Target::Disabled => Backend::Disabled,
            Target::Memory => Backend::Memory(MemoryStore::default()),
            Target::Redis(info) => {
                let client = settings.tls.client((**info).clone()).map_err(invalid)?;
                Backend::Redis(Box::new(
                    RedisStore::server(client, timeouts).map_err(invalid)?,
                ))
            }
            Target::Cluster(nodes) => {
                let client = settings
                    .tls
                    .cluster_builder(nodes.clone())
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.socket)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(invalid)?;
                Backend::Redis(Box::new(RedisStore::cluster(client, timeouts)))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                keys: KeySpace::new(&settings.namespace),
                settings,
                backend,
                counters: Counters::default(),
                backend_warnings: WarnLimiter::new(WARN_INTERVAL),
                codec_warnings: WarnLimiter::new(WARN_INTERVAL),
                flights: Flights::default(),
                function_tags: RwLock::default(),
            }),
        })
    }

    /// This cache's namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.settings.namespace
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// How many entries the in-memory backend holds (expired ones not yet freed included);
    /// `None` for the other backends.
    pub fn local_entry_count(&self) -> Option<usize> {
        match &self.inner.backend {
            Backend::Memory(store) => Some(store.entry_count()),
            _ => None,
        }
    }

    /// Frees every expired entry and tag of the in-memory backend now (it also does so by
    /// itself as it grows); does nothing for the other backends.
    pub fn purge_expired(&self) {
        if let Backend::Memory(store) = &self.inner.backend {
            store.purge_expired();
        }
    }

    /// Stores `value` under `key` and `tags`. `lifetime`: `None` for the default lifetime,
    /// `Some(Duration::ZERO)` for an entry that never expires. Returns whether it was stored.
    ///
    /// On Redis this is one round trip: a script creates the tags that have no version yet and
    /// stamps the entry with every tag's current version.
    pub fn set<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
        lifetime: Option<Duration>,
    ) -> bool {
        let Some(payload) = self.encode(value) else {
            return false;
        };
        let request = self.request(key.as_ref(), tags, Vec::new());
        self.store(&request, &payload, lifetime)
    }

    /// Async twin of [`TaggedCache::set`].
    pub async fn set_async<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
        lifetime: Option<Duration>,
    ) -> bool {
        let Some(payload) = self.encode(value) else {
            return false;
        };
        let request = self.request(key.as_ref(), tags, Vec::new());
        self.store_async(&request, &payload, lifetime).await
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
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<T, CacheMiss> {
        let request = self.request(key.as_ref(), tags, Vec::new());
        match self.lookup(&request) {
            Lookup::Hit(bytes, _) => self.decode(&bytes).ok_or(CacheMiss),
            Lookup::Miss(_) | Lookup::Unavailable => Err(CacheMiss),
        }
    }

    /// Async twin of [`TaggedCache::get`].
    ///
    /// # Errors
    /// As [`TaggedCache::get`].
    pub async fn get_async<T: DeserializeOwned>(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<T, CacheMiss> {
        let request = self.request(key.as_ref(), tags, Vec::new());
        match self.lookup_async(&request).await {
            Lookup::Hit(bytes, _) => self.decode(&bytes).ok_or(CacheMiss),
            Lookup::Miss(_) | Lookup::Unavailable => Err(CacheMiss),
        }
    }

    /// The stored bytes of the fresh entry under `key` and exactly this set of `tags`, not
    /// decoded (JSON unless it was written with a custom `serializer`): for tools that show what
    /// an entry holds, whatever its type. One round trip, as [`TaggedCache::get`].
    ///
    /// ```
    /// use rtc::{TaggedCache, NO_TAGS};
    ///
    /// let cache = TaggedCache::builder().in_local_memory(true).build().unwrap();
    /// cache.set("answer", &42, NO_TAGS, None);
    /// assert_eq!(cache.get_bytes("answer", NO_TAGS).as_deref(), Ok(&b"42"[..]));
    /// ```
    ///
    /// # Errors
    /// [`CacheMiss`] when there is no fresh entry or when the backend could not be reached.
    pub fn get_bytes(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Vec<u8>, CacheMiss> {
        let request = self.request(key.as_ref(), tags, Vec::new());
        match self.lookup(&request) {
            Lookup::Hit(payload, _) => Ok(payload.into_vec()),
            Lookup::Miss(_) | Lookup::Unavailable => Err(CacheMiss),
        }
    }

    /// Removes the entry stored under `key` and exactly this set of `tags`; true if one was removed.
    pub fn delete(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> bool {
        let request = self.request(key.as_ref(), tags, Vec::new());
        self.remove(&request)
    }

    /// Async twin of [`TaggedCache::delete`].
    pub async fn delete_async(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> bool {
        let request = self.request(key.as_ref(), tags, Vec::new());
        self.remove_async(&request).await
    }

    /// Makes every entry carrying any of `tags` miss from now on: one round trip, O(1) in the
    /// number of entries. Returns whether the backend took the invalidation.
    pub fn invalidate(&self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> bool {
        let bumps = self.bumps(
            tags.into_iter()
                .map(|tag| self.inner.keys.user_tag(tag.as_ref())),
        );
        self.bump(&bumps)
    }

    /// Async twin of [`TaggedCache::invalidate`].
    pub async fn invalidate_async(&self, tags: impl IntoIterator<Item = impl AsRef<str>>) -> bool {
        let bumps = self.bumps(
            tags.into_iter()
                .map(|tag| self.inner.keys.user_tag(tag.as_ref())),
        );
        self.bump_async(&bumps).await
    }

    /// Makes every entry of this namespace miss from now on (every entry carries the namespace's
    /// own tag). One round trip.
    pub fn invalidate_all(&self) -> bool {
        let bumps = self.bumps([self.inner.keys.namespace_tag()]);
        self.bump(&bumps)
    }

    /// Async twin of [`TaggedCache::invalidate_all`].
    pub async fn invalidate_all_async(&self) -> bool {
        let bumps = self.bumps([self.inner.keys.namespace_tag()]);
        self.bump_async(&bumps).await
    }

    /// The pattern every Redis key of this cache's namespace matches (`rtc:?:<namespace id>:*`),
    /// for an ACL rule that confines a user to the namespace, or for `SCAN`.
    ///
    /// ```
    /// let cache = rtc::TaggedCache::builder().namespace("shop").in_local_memory(true).build().unwrap();
    /// assert!(cache.key_pattern().starts_with("rtc:?:"));
    /// // ACL SETUSER shop on >password ~<pattern> +@read +@write +@scripting -@dangerous
    /// ```
    pub fn key_pattern(&self) -> String {
        self.inner.keys.pattern()
    }
}

mod engine;
