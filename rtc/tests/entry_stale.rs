//! The stale windows of `TaggedCache::entry` (`stale_if_error`, `stale_while_revalidate` with
//! `try_get_with_detached_async`), in memory: a value past its lifetime is served within its
//! window, and never once its tag was invalidated.
//!
//! Entries live 50 ms; a test waits until an entry is stale (a low-level `get`, which never
//! returns a stale value, misses), and waits for a background write by counting writes. No
//! assertion depends on timing.
#![deny(warnings)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::TaggedCache;

const LIFETIME: Duration = Duration::from_millis(50);
const WINDOW: Duration = Duration::from_secs(600);

/// Polls `condition` until it holds; fails after 30 s (an event that never came).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what}: never");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_until_stale(cache: &TaggedCache, key: &str) {
    wait_until("the entry is past its lifetime", || {
        cache.get::<u64>(key, ["rates"]).is_err()
    });
}

#[test]
fn stale_if_error_serves_the_entry_past_its_lifetime_and_never_after_an_invalidation() {
    let cache = TaggedCache::builder().in_memory().build().unwrap();
    let entry = || {
        cache
            .entry("rate", ["rates"])
            .lifetime(LIFETIME)
            .stale_if_error(WINDOW)
    };
    assert_eq!(entry().try_get_with(|| Ok::<u64, &str>(1)), Ok(1));
    wait_until_stale(&cache, "rate");
    assert_eq!(entry().try_get_with(|| Err::<u64, _>("down")), Ok(1));
    assert!(cache.invalidate(["rates"]));
    assert_eq!(entry().try_get_with(|| Err::<u64, _>("down")), Err("down"));
}

#[test]
fn without_the_window_a_failure_past_the_lifetime_is_returned() {
    let cache = TaggedCache::builder().in_memory().build().unwrap();
    let entry = || cache.entry("rate", ["rates"]).lifetime(LIFETIME);
    assert_eq!(entry().try_get_with(|| Ok::<u64, &str>(1)), Ok(1));
    wait_until_stale(&cache, "rate");
    assert_eq!(entry().try_get_with(|| Err::<u64, _>("down")), Err("down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_returns_the_stale_value_and_refreshes_it_behind() {
    let cache = TaggedCache::builder().in_memory().build().unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let call = |value: u64| {
        let runs = Arc::clone(&runs);
        cache
            .entry("rate", ["rates"])
            .lifetime(LIFETIME)
            .stale_while_revalidate(WINDOW)
            .try_get_with_detached_async(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<u64, String>(value)
            })
    };
    assert_eq!(call(1).await, Ok(1));
    wait_until_stale(&cache, "rate");
    let sets = cache.stats().sets;
    assert_eq!(call(2).await, Ok(1), "the stale value, at once");
    wait_until("the refresh stored its value", || cache.stats().sets > sets);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.get::<u64>("rate", ["rates"]), Ok(2));
    wait_until_stale(&cache, "rate");
    assert!(cache.invalidate(["rates"]));
    assert_eq!(
        call(3).await,
        Ok(3),
        "an invalidated entry is computed, not served"
    );
}
