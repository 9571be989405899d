//! The async API on executors other than tokio: the in-memory and disabled backends work on any
//! executor (nothing panics, `lock = true` coalesces); the Redis backend, which needs tokio,
//! warns and computes uncached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use futures_executor::block_on;
use rtc::{Lifetime, TaggedCache, NO_TAGS};
use rtc_tests::gates::{wait_until, Latch, EVENT_LIMIT};
use rtc_tests::statics::install;
use rtc_tests::{warnings, RedisServer};

static MEMORY: OnceLock<TaggedCache> = OnceLock::new();
static DISABLED: OnceLock<TaggedCache> = OnceLock::new();
static REDIS: OnceLock<TaggedCache> = OnceLock::new();

/// Opened by the first caller's body: the second caller starts while it computes.
static LEADING: Latch = Latch::new();

#[rtc::cached(key = "shared", lock = true, cache = MEMORY.get().unwrap(), skip(runs))]
async fn in_memory(runs: &AtomicU64) -> u64 {
    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
        LEADING.open();
        // Done once the second caller waits for this computation, or (coalescing broken)
        // computes by itself.
        let cache = MEMORY.get().unwrap();
        wait_until(EVENT_LIMIT, "the second caller joined", || {
            cache.stats().lock_waits == 1 || runs.load(Ordering::SeqCst) == 2
        });
    }
    7
}

#[rtc::cached(key = "k", lock = true, cache = DISABLED.get().unwrap(), skip(runs))]
async fn disabled(runs: &AtomicU64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    8
}

#[rtc::cached(key = "k", lock = true, cache = REDIS.get().unwrap(), skip(runs))]
async fn on_redis(runs: &AtomicU64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    9
}

#[test]
fn the_in_memory_backend_coalesces_async_callers_on_any_executor() {
    MEMORY
        .set(TaggedCache::builder().in_memory().build().unwrap())
        .unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    // Two threads, each with its own futures executor (no tokio anywhere): the first leads and
    // computes; the second starts while it does, and waits for it with a deadline (which used
    // to panic outside tokio).
    let call = || {
        let runs = Arc::clone(&runs);
        std::thread::spawn(move || block_on(in_memory(&runs)))
    };
    let leader = call();
    LEADING.wait("the first caller computes");
    let follower = call();
    for caller in [leader, follower] {
        assert_eq!(caller.join().expect("no panic"), 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation for both");
    assert_eq!(MEMORY.get().unwrap().stats().lock_waits, 1);
    assert_eq!(block_on(in_memory(&runs)), 7);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let cache = MEMORY.get().unwrap();
    assert!(block_on(cache.set_async(
        "k",
        &1,
        NO_TAGS,
        Lifetime::Default
    )));
    assert_eq!(block_on(cache.get_async::<i32>("k", NO_TAGS)), Ok(1));
    assert!(block_on(cache.invalidate_all_async()));
}

#[test]
fn the_disabled_backend_runs_the_function_on_any_executor() {
    install(
        &DISABLED,
        TaggedCache::builder().disabled(true).build().unwrap(),
    );
    let runs = AtomicU64::new(0);
    assert_eq!(block_on(disabled(&runs)), 8);
    assert_eq!(block_on(disabled(&runs)), 8);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn the_redis_backend_outside_tokio_warns_and_computes_uncached() {
    let server = RedisServer::start();
    install(
        &REDIS,
        TaggedCache::builder()
            .url(server.url())
            .namespace(rtc_tests::unique_namespace("executors"))
            .build()
            .unwrap(),
    );
    let runs = AtomicU64::new(0);
    let (results, logged) = warnings::capture(|| {
        (0..3)
            .map(|_| block_on(on_redis(&runs)))
            .collect::<Vec<_>>()
    });
    assert_eq!(results, vec![9, 9, 9]);
    assert_eq!(runs.load(Ordering::SeqCst), 3, "no cache outside tokio");
    assert_eq!(logged.len(), 1, "one warning, not one per call: {logged:?}");
    assert!(
        logged[0].message.contains("tokio"),
        "the warning names the cause: {logged:?}"
    );
    // The sync API on the same cache is not affected.
    let cache = REDIS.get().unwrap();
    assert!(cache.set("k", &1, NO_TAGS, Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", NO_TAGS), Ok(1));
}
