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
    stale: StaleOptions,
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
            stale: StaleOptions::default(),
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

    /// Serves the entry up to `window` past its lifetime when the computation fails (an `Err`
    /// from [`try_get_with`](Self::try_get_with) and its twins), as `#[cached(stale_if_error
    /// = ..)]` does: never an entry whose tags were invalidated or that was deleted. Without it
    /// the cache's default applies ([`stale_if_error`](crate::TaggedCacheBuilder::stale_if_error));
    /// a zero window turns that default off for this entry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtc::TaggedCache;
    ///
    /// let cache = TaggedCache::builder().in_memory().build()?;
    /// let rate: Result<f64, String> = cache
    ///     .entry("rate:EUR", ["rates"])
    ///     .stale_if_error(Duration::from_secs(3600))
    ///     .try_get_with(|| Ok(1.08));
    /// assert_eq!(rate, Ok(1.08));
    /// # Ok::<(), rtc::ConfigError>(())
    /// ```
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale.if_error = Some(window);
        self
    }

    /// Serves the entry up to `window` past its lifetime at once and refreshes it in the
    /// background, as `#[cached(stale_while_revalidate = ..)]` does. Only
    /// [`try_get_with_detached_async`](Self::try_get_with_detached_async) can refresh in the
    /// background (its future owns what it needs); the other methods ignore it. A zero window
    /// turns the cache's default
    /// ([`stale_while_revalidate`](crate::TaggedCacheBuilder::stale_while_revalidate)) off.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale.while_revalidate = Some(window);
        self
    }

    /// [`try_get_with_async`](Self::try_get_with_async) for a future that owns what it needs
    /// (`Send + 'static`): with [`stale_while_revalidate`](Self::stale_while_revalidate) an
    /// entry past its lifetime is returned at once and the future refreshes it on the current
    /// tokio runtime (its blocking pool), the lock held so that one refresh runs across
    /// processes; with the cache's `stale_if_slow`, a computation that takes longer lets the
    /// call return the stale value and stores its own when it finishes. What the future stores
    /// is stamped with the versions read before it started, so an invalidation that lands
    /// meanwhile makes it miss.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtc::TaggedCache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rtc::ConfigError> {
    /// let cache = TaggedCache::builder().in_memory().build()?;
    /// let page: Result<String, String> = cache
    ///     .entry("page:/", ["pages"])
    ///     .stale_while_revalidate(Duration::from_secs(60))
    ///     .try_get_with_detached_async(async { Ok("<h1>Hello</h1>".to_owned()) })
    ///     .await;
    /// assert_eq!(page.as_deref(), Ok("<h1>Hello</h1>"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_get_with_detached_async<T, E, F>(self, future: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        match self.call("try_get_with_detached_async") {
            Some(call) => call.run_detached_async(codec(), future).await,
            None => future.await,
        }
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
            stale: self.stale,
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
