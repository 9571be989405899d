//! [`TaggedCache`]: the public API, sync and async.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, BackendError, MemoryStore, ReadReply, RedisStore, Timeouts};
use crate::config::{Settings, TaggedCacheBuilder, Target};
use crate::entry::{self, Observed};
use crate::error::{CacheMiss, ConfigError};
use crate::flights::Flights;
use crate::health::WarnLimiter;
use crate::keys::LockKeys;
use crate::keys::{KeySpace, TagKey};
use crate::request::{first_read, second_read, FirstRead, Lookup, Request};
use crate::stats::{CacheStats, Counters};
use crate::version::Version;

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
        let request = self.request(key.as_ref(), tags, &[]);
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
        let request = self.request(key.as_ref(), tags, &[]);
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
        let request = self.request(key.as_ref(), tags, &[]);
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
        let request = self.request(key.as_ref(), tags, &[]);
        match self.lookup_async(&request).await {
            Lookup::Hit(bytes, _) => self.decode(&bytes).ok_or(CacheMiss),
            Lookup::Miss(_) | Lookup::Unavailable => Err(CacheMiss),
        }
    }

    /// Removes the entry stored under `key` and exactly this set of `tags`; true if one was removed.
    pub fn delete(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> bool {
        let request = self.request(key.as_ref(), tags, &[]);
        self.remove(&request)
    }

    /// Async twin of [`TaggedCache::delete`].
    pub async fn delete_async(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> bool {
        let request = self.request(key.as_ref(), tags, &[]);
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
}

/// The engine under the public API, shared with the `#[cached]` support code.
impl TaggedCache {
    pub(crate) fn request<I, S>(&self, key: &str, tags: I, implicit: &[&str]) -> Request
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Request::new(&self.inner.keys, key, tags, implicit)
    }

    pub(crate) fn lookup(&self, request: &Request) -> Lookup {
        let lookup = match self.inner.backend.read(&request.entry, &request.tags()) {
            Ok(reply) => self.complete_lookup(request, reply),
            Err(error) => self.failed("read", &error),
        };
        self.count(&lookup);
        lookup
    }

    pub(crate) async fn lookup_async(&self, request: &Request) -> Lookup {
        let lookup = match self
            .inner
            .backend
            .read_async(&request.entry, &request.tags())
            .await
        {
            Ok(reply) => self.complete_lookup_async(request, reply).await,
            Err(error) => self.failed("read", &error),
        };
        self.count(&lookup);
        lookup
    }

    /// Turns what a read returned into a hit or a miss, reading the versions of implicit tags
    /// the entry carries but the request did not name (one more round trip, rare).
    pub(crate) fn complete_lookup(&self, request: &Request, reply: ReadReply) -> Lookup {
        match first_read(request, reply.entry, &reply.versions) {
            FirstRead::Done(lookup) => lookup,
            FirstRead::Unobserved {
                observed,
                entry,
                tags,
            } => {
                let tags = self.tag_keys(tags);
                match self.inner.backend.read_tags(&tags) {
                    Ok(versions) => second_read(observed, &entry, tags, &versions),
                    Err(error) => self.failed("read", &error),
                }
            }
        }
    }

    pub(crate) async fn complete_lookup_async(
        &self,
        request: &Request,
        reply: ReadReply,
    ) -> Lookup {
        match first_read(request, reply.entry, &reply.versions) {
            FirstRead::Done(lookup) => lookup,
            FirstRead::Unobserved {
                observed,
                entry,
                tags,
            } => {
                let tags = self.tag_keys(tags);
                match self.inner.backend.read_tags_async(&tags).await {
                    Ok(versions) => second_read(observed, &entry, tags, &versions),
                    Err(error) => self.failed("read", &error),
                }
            }
        }
    }

    /// Writes `payload` stamped with the tags' versions as they are now.
    pub(crate) fn store(
        &self,
        request: &Request,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let result = self.inner.backend.write_stamped(
            &request.entry,
            request.unobserved(),
            payload,
            self.lifetimes(lifetime),
        );
        self.written(result)
    }

    pub(crate) async fn store_async(
        &self,
        request: &Request,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let result = self
            .inner
            .backend
            .write_stamped_async(
                &request.entry,
                request.unobserved(),
                payload,
                self.lifetimes(lifetime),
            )
            .await;
        self.written(result)
    }

    /// Gives every tag observed without a version one now (created atomically; where another
    /// writer got there first, its version is taken), so that a value computed from here on is
    /// stamped with versions from before its computation. `None` when the backend failed.
    pub(crate) fn complete_versions(&self, mut observed: Observed) -> Option<Observed> {
        let missing = missing_versions(&observed);
        if missing.is_empty() {
            return Some(observed);
        }
        let tag_lifetime = self.inner.settings.lifetime_for_tags;
        match self.inner.backend.create_tags(&missing, tag_lifetime) {
            Ok(versions) => {
                fill_missing(&mut observed, &versions);
                Some(observed)
            }
            Err(error) => {
                self.failed("write", &error);
                None
            }
        }
    }

    pub(crate) async fn complete_versions_async(&self, mut observed: Observed) -> Option<Observed> {
        let missing = missing_versions(&observed);
        if missing.is_empty() {
            return Some(observed);
        }
        let tag_lifetime = self.inner.settings.lifetime_for_tags;
        match self
            .inner
            .backend
            .create_tags_async(&missing, tag_lifetime)
            .await
        {
            Ok(versions) => {
                fill_missing(&mut observed, &versions);
                Some(observed)
            }
            Err(error) => {
                self.failed("write", &error);
                None
            }
        }
    }

    /// Writes `payload` stamped with `observed`, versions read (and completed) *before* it was
    /// computed, so that an invalidation landing during the computation makes it miss.
    pub(crate) fn store_observed(
        &self,
        request: &Request,
        observed: &Observed,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let Some(bytes) = crate::entry::encode(observed, payload) else {
            return self.written(Err(BackendError::TooManyTags));
        };
        let (lifetime, _) = self.lifetimes(lifetime);
        let seen = observed.tombstone.as_deref();
        let result = self
            .inner
            .backend
            .write_unless_deleted(&request.entry, bytes, lifetime, seen);
        self.written(result)
    }

    pub(crate) async fn store_observed_async(
        &self,
        request: &Request,
        observed: &Observed,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let Some(bytes) = crate::entry::encode(observed, payload) else {
            return self.written(Err(BackendError::TooManyTags));
        };
        let (lifetime, _) = self.lifetimes(lifetime);
        let seen = observed.tombstone.as_deref();
        let result = self
            .inner
            .backend
            .write_unless_deleted_async(&request.entry, bytes, lifetime, seen)
            .await;
        self.written(result)
    }

    pub(crate) fn remove(&self, request: &Request) -> bool {
        let lifetime = self.tombstone_lifetime();
        match self
            .inner
            .backend
            .delete(&request.entry, entry::tombstone(), lifetime)
        {
            Ok(removed) => removed,
            Err(error) => {
                self.failed("delete", &error);
                false
            }
        }
    }

    pub(crate) async fn remove_async(&self, request: &Request) -> bool {
        let lifetime = self.tombstone_lifetime();
        let deleted = self
            .inner
            .backend
            .delete_async(&request.entry, entry::tombstone(), lifetime)
            .await;
        match deleted {
            Ok(removed) => removed,
            Err(error) => {
                self.failed("delete", &error);
                false
            }
        }
    }

    /// New versions for `tags`, ready for [`TaggedCache::bump`].
    pub(crate) fn bumps(&self, tags: impl IntoIterator<Item = TagKey>) -> Vec<(TagKey, Version)> {
        tags.into_iter()
            .map(|tag| (tag, Version::fresh()))
            .collect()
    }

    /// The keys of tags an entry recorded by id.
    fn tag_keys(&self, ids: Vec<crate::keys::TagId>) -> Vec<TagKey> {
        ids.into_iter()
            .map(|id| self.inner.keys.tag_from_id(id))
            .collect()
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

    pub(crate) fn implicit_tag(&self, name: &str) -> TagKey {
        self.inner.keys.implicit_tag(name)
    }

    pub(crate) fn bump(&self, bumps: &[(TagKey, Version)]) -> bool {
        let result = self
            .inner
            .backend
            .bump(bumps, self.inner.settings.lifetime_for_tags);
        self.invalidated(result)
    }

    pub(crate) async fn bump_async(&self, bumps: &[(TagKey, Version)]) -> bool {
        let result = self
            .inner
            .backend
            .bump_async(bumps, self.inner.settings.lifetime_for_tags)
            .await;
        self.invalidated(result)
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Option<Vec<u8>> {
        match serde_json::to_vec(value) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                self.codec_trouble(format_args!(
                    "value could not be serialized, not caching it: {error}"
                ));
                None
            }
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Option<T> {
        match serde_json::from_slice(bytes) {
            Ok(value) => Some(value),
            Err(error) => {
                self.codec_trouble(format_args!("cached value does not decode as the requested type, treating it as a miss: {error}"));
                None
            }
        }
    }

    /// Logs (rate-limited) a value that could not be encoded or decoded.
    pub(crate) fn codec_trouble(&self, message: fmt::Arguments<'_>) {
        Counters::bump(&self.inner.counters.errors);
        if let Some(held_back) = self.inner.codec_warnings.permit() {
            tracing::warn!(namespace = %self.inner.settings.namespace, held_back, "rtc: {message}");
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn hook(&self) -> Option<&crate::hook::Hook> {
        self.inner.settings.hook.as_ref()
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.flights
    }

    pub(crate) fn lock_keys(&self, request: &Request) -> LockKeys {
        self.inner.keys.lock(&request.entry)
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Reports a backend failure of a lock operation (rate-limited).
    pub(crate) fn lock_trouble(&self, error: &BackendError) {
        self.failed("lock", error);
    }

    /// How long a deleted entry's tombstone stays: as long as an entry written now would, so
    /// that a computation in flight cannot bring the entry back (one day when entries never
    /// expire).
    fn tombstone_lifetime(&self) -> Option<Duration> {
        Some(
            self.inner
                .settings
                .default_lifetime
                .unwrap_or(Duration::from_secs(86_400)),
        )
    }

    /// Entry lifetime for a write (`None` = the default, zero = never expires) and tag lifetime.
    fn lifetimes(&self, lifetime: Option<Duration>) -> (Option<Duration>, Option<Duration>) {
        let entry = match lifetime {
            None => self.inner.settings.default_lifetime,
            Some(lifetime) if lifetime.is_zero() => None,
            Some(lifetime) => Some(lifetime),
        };
        (entry, self.inner.settings.lifetime_for_tags)
    }

    fn count(&self, lookup: &Lookup) {
        let counters = &self.inner.counters;
        match lookup {
            Lookup::Hit(..) => Counters::bump(&counters.hits),
            Lookup::Miss(_) | Lookup::Unavailable => Counters::bump(&counters.misses),
        }
    }

    fn written(&self, result: Result<bool, BackendError>) -> bool {
        match result {
            Ok(true) => {
                Counters::bump(&self.inner.counters.sets);
                true
            }
            Ok(false) => false,
            Err(error) => {
                self.failed("write", &error);
                false
            }
        }
    }

    fn invalidated(&self, result: Result<(), BackendError>) -> bool {
        match result {
            Ok(()) => {
                Counters::bump(&self.inner.counters.invalidations);
                true
            }
            Err(error) => {
                self.failed("invalidate", &error);
                false
            }
        }
    }

    /// Reports a backend failure (rate-limited) and turns it into an unavailable lookup.
    fn failed(&self, operation: &'static str, error: &BackendError) -> Lookup {
        if !error.is_quiet() {
            Counters::bump(&self.inner.counters.errors);
            if let Some(held_back) = self.inner.backend_warnings.permit() {
                tracing::warn!(
                    namespace = %self.inner.settings.namespace,
                    operation,
                    held_back,
                    "rtc: {error}; the call goes on without the cache"
                );
            }
        }
        Lookup::Unavailable
    }
}

/// Tags observed without a version, each with a version proposed for it.
fn missing_versions(observed: &Observed) -> Vec<(TagKey, Version)> {
    observed
        .all()
        .filter(|(_, version)| version.is_none())
        .map(|(tag, _)| (tag.clone(), Version::fresh()))
        .collect()
}

/// Fills the tags that had no version with `versions`, in order.
fn fill_missing(observed: &mut Observed, versions: &[Version]) {
    let slots = observed
        .canonical
        .iter_mut()
        .chain(observed.implicit.iter_mut())
        .filter(|(_, version)| version.is_none());
    for ((_, slot), version) in slots.zip(versions) {
        *slot = Some(*version);
    }
}
