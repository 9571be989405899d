//! Counters since the cache was built.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    /// Hits answered from the near cache, without a round trip (also counted in `hits`); see
    /// [`TaggedCacheBuilder::near_cache`](crate::TaggedCacheBuilder::near_cache).
    pub near_hits: u64,
    /// Decorated calls that returned a value past its lifetime (`stale_while_revalidate`,
    /// `stale_if_error`, `timeout`), beside their hit (returned without computing) or miss (the
    /// function ran, and failed or took too long).
    pub stale_hits: u64,
}

/// The counters behind [`CacheStats`]. Each is striped over cache lines, one stripe per group
/// of threads, so that threads counting hits at once do not fight over one line.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Hits answered by the backend: a near hit counts in `near_hits` alone (one atomic add on
    /// its path, not two), and [`CacheStats::hits`] is the sum.
    pub hits: Striped,
    pub misses: Striped,
    pub sets: Striped,
    pub invalidations: Striped,
    pub errors: Striped,
    pub lock_waits: Striped,
    pub near_hits: Striped,
    pub stale_hits: Striped,
}

/// How many stripes a counter has.
const STRIPES: usize = 8;

/// One counter, summed over its stripes when read.
#[derive(Debug, Default)]
pub(crate) struct Striped([Line; STRIPES]);

/// A stripe on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line(AtomicU64);

/// This thread's stripe: threads take stripes in turn as they first count.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

impl Striped {
    fn read(&self) -> u64 {
        self.0
            .iter()
            .map(|line| line.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl Counters {
    pub(crate) fn bump(counter: &Striped) {
        counter.0[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let near_hits = self.near_hits.read();
        CacheStats {
            hits: self.hits.read().wrapping_add(near_hits),
            misses: self.misses.read(),
            sets: self.sets.read(),
            invalidations: self.invalidations.read(),
            errors: self.errors.read(),
            lock_waits: self.lock_waits.read(),
            near_hits,
            stale_hits: self.stale_hits.read(),
        }
    }
}
