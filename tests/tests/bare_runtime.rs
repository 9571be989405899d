//! Async calls on tokio runtimes built without their I/O or time driver (tokio panics when
//! redis-rs opens a socket or arms a timeout there): rtc drives their Redis I/O on a runtime of
//! its own, so they hit, miss and store as anywhere else, with one warning and no panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rtc::{Lifetime, TaggedCache};
use rtc_tests::statics::install;
use rtc_tests::{unique_namespace, warnings, RedisServer};
use tokio::runtime::{Builder, Runtime};

static REDIS: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(cache = REDIS.get().unwrap(), lock = true, tags = [format!("id:{id}")], skip(runs))]
async fn answer(id: u64, runs: &AtomicU64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    id * 10
}

/// Runtimes that lack a driver, each with what it lacks.
fn bare_runtimes() -> Vec<(&'static str, Runtime)> {
    vec![
        (
            "a current-thread runtime with no driver",
            Builder::new_current_thread().build(),
        ),
        (
            "a multi-thread runtime with no driver",
            Builder::new_multi_thread().worker_threads(1).build(),
        ),
        (
            "a runtime without the I/O driver",
            Builder::new_current_thread().enable_time().build(),
        ),
        (
            "a runtime without the time driver",
            Builder::new_current_thread().enable_io().build(),
        ),
    ]
    .into_iter()
    .map(|(what, built)| (what, built.expect("a tokio runtime")))
    .collect()
}

#[test]
fn every_async_call_works_on_runtimes_without_drivers_with_one_warning() {
    let server = RedisServer::start();
    let cache = install(
        &REDIS,
        TaggedCache::builder()
            .url(server.url())
            .namespace(unique_namespace("bare-runtime"))
            .build()
            .unwrap(),
    );
    let runs = AtomicU64::new(0);

    for (id, (what, runtime)) in (1..).zip(bare_runtimes()) {
        let key = format!("k{id}");
        let ((), warned) = warnings::capture(|| {
            runtime.block_on(async {
                assert!(
                    cache.set_async(&key, &id, ["t"], Lifetime::Default).await,
                    "{what}"
                );
                assert_eq!(cache.get_async::<u64>(&key, ["t"]).await, Ok(id), "{what}");
                assert!(
                    cache.get_async::<u64>("absent", ["t"]).await.is_err(),
                    "{what}"
                );
                assert!(cache.ping_async().await.is_ok(), "{what}");
                assert_eq!(answer(id, &runs).await, id * 10, "{what}: computed");
                assert_eq!(answer(id, &runs).await, id * 10, "{what}: cached");
                assert!(cache.invalidate_async([format!("id:{id}")]).await, "{what}");
                assert_eq!(answer(id, &runs).await, id * 10, "{what}: computed again");
            })
        });
        // The warnings are rate-limited: the first runtime's call warns, the others are held back.
        let expected = usize::from(id == 1);
        assert_eq!(
            warned
                .iter()
                .filter(|warning| warning.message.contains("no I/O or no time driver"))
                .count(),
            expected,
            "{what}: {warned:?}"
        );
        // What the bare runtime stored is in Redis, for the sync API too.
        assert_eq!(cache.get::<u64>(&key, ["t"]), Ok(id), "{what}");
    }

    // Each runtime computed its id twice (cold, then after the invalidation); the second call
    // on each was a hit.
    assert_eq!(runs.load(Ordering::SeqCst), 8);
    assert_eq!(cache.stats().errors, 0);
}
