//! Get-or-compute on the cache itself (`get_with` and its twins), with the guarantees of a
//! `#[cached(lock = true)]` function: they run the same call protocol.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{AsIs, Call, NearProbe, NearShared as _, Site, StaleOptions, Tags, ValueCodec};
use crate::cache::TaggedCache;
use crate::lifetime::Lifetime;
use crate::tags::IntoTags;

/// How long a caller waits for another caller's computation of the same entry, by default (as
/// `#[cached(lock = true)]` without `lock_timeout`).
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The site of the cache's own get-or-compute calls. Its empty identity gives their entries no
/// function tag, so that they are the entries `get` and `set` see under the same key and tags.
const fn site(function_name: &'static str) -> Site {
    Site {
        file: "",
        module_path: "",
        impl_type: "",
        function_name,
        is_method: false,
        identity: "",
        keyed_tags: None,
    }
}

/// One entry of a [`TaggedCache`], to read or compute: made by [`TaggedCache::entry`], for a
/// lifetime or a lock timeout other than the defaults.
///
/// ```
/// use std::time::Duration;
/// use rtc::TaggedCache;
///
/// let cache = TaggedCache::builder().in_memory().build()?;
/// let report: String = cache
///     .entry("report:2026", ["reports"])
///     .lifetime(Duration::from_secs(30))
///     .get_with(|| "slow to make".to_owned());
/// assert_eq!(report, "slow to make");
/// # Ok::<(), rtc::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "an entry does nothing until one of its get_with methods is called"]
pub struct EntryRef<'c> {
    cache: &'c TaggedCache,
    key: String,
    tags: Tags,
    lifetime: Lifetime,
    lock_timeout: Duration,
}

impl TaggedCache {
    /// The entry under `key` and `tags`, to read or compute with a lifetime or lock timeout of
    /// its own ([`EntryRef`]).
    pub fn entry(&self, key: impl AsRef<str>, tags: impl IntoTags) -> EntryRef<'_> {
        EntryRef {
            cache: self,
            key: key.as_ref().to_owned(),
            tags: super::tags(tags),
            lifetime: Lifetime::Default,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// The value under `key` and `tags`, or `compute`'s, stored for the default lifetime.
    ///
    /// The guarantees of a `#[cached(lock = true)]` function: while the backend is healthy,
    /// one computation per cold entry across threads, tasks and processes (the others wait
    /// up to 5 s for it, then compute themselves); the entry is stamped with its tags'
    /// versions before `compute` runs, so an invalidation during the computation makes its
    /// value miss. It fails open: when the backend cannot be reached or a value does not
    /// (de)serialize, `compute` runs and its value is returned, with a warning. Entries are
    /// the ones [`get`](Self::get) and [`set`](Self::set) see under the same key and tags.
    ///
    /// ```
    /// use rtc::TaggedCache;
    ///
    /// let cache = TaggedCache::builder().in_memory().build()?;
    /// let first: u64 = cache.get_with("answer", ["numbers"], || 42);
    /// let again: u64 = cache.get_with("answer", ["numbers"], || unreachable!("cached"));
    /// assert_eq!((first, again), (42, 42));
    /// assert_eq!(cache.get::<u64>("answer", ["numbers"]), Ok(42));
    /// # Ok::<(), rtc::ConfigError>(())
    /// ```
    pub fn get_with<T, F>(&self, key: impl AsRef<str>, tags: impl IntoTags, compute: F) -> T
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> T,
    {
        self.entry(key, tags).get_with(compute)
    }

    /// [`get_with`](Self::get_with) for a computation that may fail: an `Ok` value is cached,
    /// an `Err` is returned and never cached.
    ///
    /// ```
    /// use rtc::TaggedCache;
    ///
    /// let cache = TaggedCache::builder().in_memory().build()?;
    /// let failed: Result<u64, String> = cache.try_get_with("n", ["t"], || Err("down".into()));
    /// assert!(failed.is_err());
    /// let found: Result<u64, String> = cache.try_get_with("n", ["t"], || Ok(7));
    /// assert_eq!(found, Ok(7));
    /// # Ok::<(), rtc::ConfigError>(())
    /// ```
    pub fn try_get_with<T, E, F>(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoTags,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<T, E>,
    {
        self.entry(key, tags).try_get_with(compute)
    }

    /// Async twin of [`get_with`](Self::get_with), taking the future itself (as moka's
    /// `future::Cache::get_with`): it is awaited only when the value must be computed.
    pub async fn get_with_async<T, F>(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoTags,
        future: F,
    ) -> T
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Future<Output = T>,
    {
        self.entry(key, tags).get_with_async(future).await
    }

    /// Async twin of [`try_get_with`](Self::try_get_with), taking the future itself.
    pub async fn try_get_with_async<T, E, F>(
        &self,
        key: impl AsRef<str>,
        tags: impl IntoTags,
        future: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        self.entry(key, tags).try_get_with_async(future).await
    }
}

impl<'c> EntryRef<'c> {
    /// How long a computed value lives (by default the cache's
    /// [`default_lifetime`](crate::TaggedCacheBuilder::default_lifetime)). A zero lifetime
    /// stores nothing: the value is computed each time, with a warning.
    pub fn lifetime(mut self, lifetime: impl Into<Lifetime>) -> Self {
        self.lifetime = lifetime.into();
        self
    }

    /// How long a caller waits for another caller's computation of this entry before it
    /// computes the value itself (default 5 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// [`TaggedCache::get_with`] for this entry.
    pub fn get_with<T, F>(self, compute: F) -> T
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> T,
    {
        match self.call("get_with") {
            Some(call) => call.run(codec(), || AsIs(compute())).0,
            None => compute(),
        }
    }

    /// [`TaggedCache::try_get_with`] for this entry.
    pub fn try_get_with<T, E, F>(self, compute: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<T, E>,
    {
        match self.call("try_get_with") {
            Some(call) => call.run(codec(), compute),
            None => compute(),
        }
    }

    /// [`TaggedCache::get_with_async`] for this entry.
    pub async fn get_with_async<T, F>(self, future: F) -> T
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Future<Output = T>,
    {
        match self.call("get_with_async") {
            Some(call) => {
                call.run_async(codec(), async { AsIs(future.await) })
                    .await
                    .0
            }
            None => future.await,
        }
    }

    /// [`TaggedCache::try_get_with_async`] for this entry.
    pub async fn try_get_with_async<T, E, F>(self, future: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        match self.call("try_get_with_async") {
            Some(call) => call.run_async(codec(), future).await,
            None => future.await,
        }
    }

    /// The call protocol of a `#[cached(lock = true)]` function for this entry; `None` when
    /// its lifetime is zero (warned), so that the value is computed and not stored.
    fn call(self, function_name: &'static str) -> Option<Call<'c>> {
        if !self.cache.lifetime_usable(self.lifetime) {
            return None;
        }
        Some(Call {
            site: site(function_name),
            cache: Some(self.cache),
            args: None,
            key: Some(self.key),
            tags: self.tags,
            lifetime: self.lifetime,
            lock: true,
            lock_timeout: self.lock_timeout,
            hook_userdata: None,
            jitter: None,
            stale: StaleOptions::default(),
        })
    }
}

/// The cache's own serde codec for `T`, kept decoded in a near cache.
fn codec<T>() -> ValueCodec<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    ValueCodec::serde(None).near(NearProbe::<T>::new().sharing())
}
