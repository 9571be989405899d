//! Counters since the cache was built.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A snapshot of a cache's counters since it was built, shared by all its clones.
///
/// Cheap to take (a handful of relaxed atomic loads), so a `/metrics` handler may call
/// [`TaggedCache::stats`](crate::TaggedCache::stats) on every scrape.
///
/// ```
/// use rtc::{Lifetime, TaggedCache, NO_TAGS};
///
/// let cache = TaggedCache::builder().in_memory().build().unwrap();
/// let _ = cache.get::<u32>("k", NO_TAGS);
/// cache.set("k", &1, NO_TAGS, Lifetime::Default);
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
    /// Background refreshes started (`stale_while_revalidate`): each runs on a thread, or a
    /// task of the tokio runtime's blocking pool, of its own. Stale hits on an entry whose
    /// refresh is under way in this process start none.
    pub refreshes: u64,
    /// Redis reads that went out in one pipeline with other calls' reads: while a read's round
    /// trip is in flight on a data connection, the reads of the calls that come meanwhile are
    /// gathered and sent together (auto-pipelining, async calls only). Compared with
    /// `hits + misses`, it says how much of the traffic shared round trips. Always 0 for the
    /// in-memory backend and for a cluster.
    pub pipelined_reads: u64,
}

/// The counters behind [`CacheStats`]. Each is striped over cache lines: a thread that counts
/// holds a stripe of its own while it lives and adds to it without a locked instruction, since no
/// other thread writes there; threads beyond [`STRIPES`] share one more line, with atomic adds.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Hits answered by the backend: a near hit counts in `near_hits` alone (one add on its
    /// path, not two), and [`CacheStats::hits`] is the sum.
    pub hits: Striped,
    pub misses: Striped,
    pub sets: Striped,
    pub invalidations: Striped,
    pub errors: Striped,
    pub lock_waits: Striped,
    pub near_hits: Striped,
    pub stale_hits: Striped,
    pub refreshes: Striped,
}

/// How many threads at once count on stripes of their own.
const STRIPES: usize = 8;

/// One counter, summed over its stripes when read.
#[derive(Debug, Default)]
pub(crate) struct Striped {
    /// Written by the one thread that holds the stripe (see [`Lease`]).
    own: [Line; STRIPES],
    /// Written by the threads that hold none.
    shared: Line,
}

/// A stripe on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line(AtomicU64);

/// The stripe a thread holds until it ends (`None`: all were taken when it first counted).
struct Lease(Option<usize>);

/// Stripes that no live thread holds, ended threads' first; `next` has never been held.
struct Stripes {
    free: Vec<usize>,
    next: usize,
}

/// Handing a stripe from an ended thread to a new one goes through this lock, so the new
/// holder's first add reads all that the old one wrote.
static STRIPES_HELD: Mutex<Stripes> = Mutex::new(Stripes {
    free: Vec::new(),
    next: 0,
});

impl Lease {
    fn take() -> Self {
        let Ok(mut stripes) = STRIPES_HELD.lock() else {
            return Self(None);
        };
        if let Some(stripe) = stripes.free.pop() {
            return Self(Some(stripe));
        }
        if stripes.next == STRIPES {
            return Self(None);
        }
        stripes.next += 1;
        Self(Some(stripes.next - 1))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(stripe), Ok(mut stripes)) = (self.0, STRIPES_HELD.lock()) {
            stripes.free.push(stripe);
        }
    }
}

thread_local! {
    static LEASE: Lease = Lease::take();
}

/// This thread's own stripe, if it holds one (not while its thread-locals are torn down).
fn own_stripe() -> Option<usize> {
    LEASE.try_with(|lease| lease.0).ok().flatten()
}

impl Striped {
    fn read(&self) -> u64 {
        self.own
            .iter()
            .chain([&self.shared])
            .map(|line| line.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Adds one.
    pub(crate) fn bump(&self) {
        match own_stripe() {
            // This thread alone writes its stripe: a load and a store, no lock prefix.
            Some(stripe) => {
                let line = &self.own[stripe].0;
                line.store(
                    line.load(Ordering::Relaxed).wrapping_add(1),
                    Ordering::Relaxed,
                );
            }
            None => {
                self.shared.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Counters {
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
            refreshes: self.refreshes.read(),
            pipelined_reads: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds `per_thread` to `counter` from each of `threads` threads at once.
    fn count_from(counter: &Striped, threads: usize, per_thread: u64) {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| (0..per_thread).for_each(|_| counter.bump()));
            }
        });
    }

    #[test]
    fn no_add_is_lost_with_more_threads_than_stripes_or_stripes_changing_hands() {
        let counter = Striped::default();
        // Three times as many threads as stripes, at once: most share the shared line.
        count_from(&counter, 3 * STRIPES, 20_000);
        // Waves of threads that end, each handing its stripe to the next wave.
        for _ in 0..10 {
            count_from(&counter, STRIPES / 2, 5_000);
        }
        let expected = 3 * STRIPES as u64 * 20_000 + 10 * (STRIPES / 2) as u64 * 5_000;
        assert_eq!(counter.read(), expected);
    }

    #[test]
    fn an_ended_thread_hands_its_stripe_on() {
        // Were stripes kept by ended threads, no more than `STRIPES` threads could ever hold one
        // in this process; other tests' threads take and return them meanwhile.
        let holders = (0..1_000)
            .scan(0, |holders, _| {
                *holders += usize::from(std::thread::spawn(own_stripe).join().unwrap().is_some());
                Some(*holders)
            })
            .find(|&holders| holders > STRIPES);
        assert!(holders.is_some(), "ended threads kept their stripes");
    }
}
