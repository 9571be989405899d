//! `stats()` counts calls: every decorated call is exactly one hit or one miss, whatever path it
//! took (a hit, a leader's computation, a follower's shared value), and the figures are the same
//! on Redis and in memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::Duration;

use rtc::{CacheStats, TaggedCache};
use rtc_tests::{unique_namespace, RedisServer};

static MEMORY: OnceLock<TaggedCache> = OnceLock::new();
static REDIS: OnceLock<TaggedCache> = OnceLock::new();

/// Declares a cold function with `lock = true` and a plain one, on `$cache`.
macro_rules! functions_on {
    ($cache:ident, $cold:ident, $plain:ident) => {
        #[rtc::cached(key = "cold", lock = true, cache = $cache.get().unwrap(), skip(runs))]
        fn $cold(runs: &AtomicU64) -> u64 {
            runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            1
        }

        #[rtc::cached(key = "plain", cache = $cache.get().unwrap(), skip(runs))]
        fn $plain(runs: &AtomicU64) -> u64 {
            runs.fetch_add(1, Ordering::SeqCst);
            2
        }
    };
}

functions_on!(MEMORY, cold_in_memory, plain_in_memory);
functions_on!(REDIS, cold_on_redis, plain_on_redis);

/// Five concurrent cold calls with `lock = true`, one more once they are done, then a plain
/// miss and a plain hit: 8 calls, 2 computations.
fn counts(
    cache: &TaggedCache,
    cold: fn(&AtomicU64) -> u64,
    plain: fn(&AtomicU64) -> u64,
) -> (CacheStats, u64) {
    let runs = AtomicU64::new(0);
    let ready = Barrier::new(5);
    std::thread::scope(|scope| {
        for _ in 0..5 {
            scope.spawn(|| {
                ready.wait();
                assert_eq!(cold(&runs), 1);
            });
        }
    });
    assert_eq!(cold(&runs), 1);
    assert_eq!(plain(&runs), 2);
    assert_eq!(plain(&runs), 2);
    (cache.stats(), runs.load(Ordering::SeqCst))
}

#[test]
fn every_decorated_call_is_one_hit_or_one_miss_on_every_backend() {
    let memory = MEMORY.get_or_init(|| TaggedCache::builder().in_memory().build().unwrap());
    let server = RedisServer::start();
    let redis = REDIS.get_or_init(|| {
        TaggedCache::builder()
            .namespace(unique_namespace("call-counts"))
            .url(server.url())
            .build()
            .unwrap()
    });
    let in_memory = counts(memory, cold_in_memory, plain_in_memory);
    let on_redis = counts(redis, cold_on_redis, plain_on_redis);
    for (backend, (stats, runs)) in [("in memory", in_memory), ("on Redis", on_redis)] {
        assert_eq!(runs, 2, "{backend}: one computation per entry");
        assert_eq!(
            (stats.hits, stats.misses),
            (6, 2),
            "{backend}: 8 calls, two of which computed: {stats:?}"
        );
        assert!(stats.lock_waits <= 4, "{backend}: {stats:?}");
    }
    assert_eq!(
        (in_memory.0.hits, in_memory.0.misses),
        (on_redis.0.hits, on_redis.0.misses),
        "the same calls count the same on both backends"
    );
}
