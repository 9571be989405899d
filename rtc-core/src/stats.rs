//! Counters since the cache was built.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was built, shared by all its clones.
///
/// Cheap to take (a handful of relaxed atomic loads), so a `/metrics` handler may call
/// [`TaggedCache::stats`](crate::TaggedCache::stats) on every scrape.
///
/// ```
/// use rtc::{TaggedCache, NO_TAGS};
///
/// let cache = TaggedCache::builder().in_local_memory(true).build().unwrap();
/// let _ = cache.get::<u32>("k", NO_TAGS);
/// cache.set("k", &1, NO_TAGS, None);
/// let _ = cache.get::<u32>("k", NO_TAGS);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.sets), (1, 1, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered without computing: a `get` that returned a value, or a decorated call
    /// answered from the cache or by another caller's computation (`lock = true`).
    pub hits: u64,
    /// Calls that found nothing fresh (including those the backend could not answer): a `get`
    /// that missed, or a decorated call that ran its function. Every `get` and every decorated
    /// call is exactly one hit or one miss, on every backend, so `hits / (hits + misses)` is the
    /// hit ratio; `refresh_<fn>` counts as neither.
    pub misses: u64,
    /// Entries written.
    pub sets: u64,
    /// Calls to `invalidate`, `invalidate_all` and the generated `invalidate_all_<fn>`.
    pub invalidations: u64,
    /// Backend failures and values that could not be encoded or decoded.
    pub errors: u64,
    /// Times a caller waited for another caller's computation (`lock = true`), beside its hit
    /// or miss.
    pub lock_waits: u64,
    /// Decorated calls that returned a value past its lifetime (`stale_while_revalidate`,
    /// `stale_if_error`, `timeout`), beside their hit (returned without computing) or miss (the
    /// function ran, and failed or took too long).
    pub stale_hits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub sets: AtomicU64,
    pub invalidations: AtomicU64,
    pub errors: AtomicU64,
    pub lock_waits: AtomicU64,
    pub stale_hits: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            hits: read(&self.hits),
            misses: read(&self.misses),
            sets: read(&self.sets),
            invalidations: read(&self.invalidations),
            errors: read(&self.errors),
            lock_waits: read(&self.lock_waits),
            stale_hits: read(&self.stale_hits),
        }
    }
}
