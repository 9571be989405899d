//! Against a port nobody listens on, every call answers at once (a miss, a skipped write),
//! sync and async: an outage costs callers nothing but the cache.

use std::time::{Duration, Instant};

use rtc::TaggedCache;
use rtc_tests::free_port;

/// Far below the 100-200 ms a reconnect retry inside the async connection used to add, and far
/// above a refused connection on loopback (well under a millisecond).
const BOUND: Duration = Duration::from_millis(75);

fn closed_port_cache() -> TaggedCache {
    TaggedCache::builder()
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// The slowest of 30 calls made 100 ms apart (so that several back-off periods end in between
/// and Redis is tried again).
fn slowest(mut call: impl FnMut()) -> Duration {
    (0..30)
        .map(|_| {
            let started = Instant::now();
            call();
            let took = started.elapsed();
            std::thread::sleep(Duration::from_millis(100));
            took
        })
        .max()
        .unwrap_or_default()
}

#[test]
fn sync_calls_answer_at_once_against_a_closed_port() {
    let cache = closed_port_cache();
    let slowest = slowest(|| assert!(cache.get::<u32>("k", ["t"]).is_err()));
    assert!(slowest < BOUND, "slowest call: {slowest:?}");
}

#[test]
fn async_calls_answer_at_once_against_a_closed_port() {
    let cache = closed_port_cache();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let slowest = slowest(|| {
        runtime.block_on(async { assert!(cache.get_async::<u32>("k", ["t"]).await.is_err()) })
    });
    assert!(slowest < BOUND, "slowest call: {slowest:?}");
}
