//! Against a server that is not there, every call answers at once (a miss, a skipped write),
//! sync and async: an outage costs callers nothing but the cache.
//!
//! What made a call wait was a connection attempt of its own beyond the first: the async
//! connection used to retry, adding 100-200 ms to one call per back-off pause. A closed port
//! shows nothing of the attempts made on it, so these tests count them on a port that accepts
//! every connection and closes it at once: each call that tries Redis makes one attempt and
//! counts one error. Counting, not timing: a loaded machine changes how many calls try Redis
//! (the back-off pauses are timed), never how many attempts each makes.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtc::{MissKind, TaggedCache};
use rtc_tests::gates::{wait_until, EVENT_LIMIT};

/// Calls that try Redis (after a back-off pause) before the counts are compared.
const ATTEMPTS: u64 = 4;

/// A loopback port whose connections are accepted and closed at once, and how many were.
fn closing_port() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("its address").port();
    let accepted = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            // Counted before it is closed, so before the call it answers sees the close.
            counted.fetch_add(1, Ordering::SeqCst);
            drop(connection);
        }
    });
    (port, accepted)
}

fn cache_on(port: u16) -> TaggedCache {
    TaggedCache::builder()
        .url(format!("redis://127.0.0.1:{port}/0"))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Calls `call` until [`ATTEMPTS`] of them have tried Redis (each failed attempt counts an
/// error); returns (connections accepted, errors counted).
fn attempts(cache: &TaggedCache, accepted: &AtomicU64, mut call: impl FnMut()) -> (u64, u64) {
    wait_until(EVENT_LIMIT, "calls tried Redis again", || {
        call();
        cache.stats().errors >= ATTEMPTS
    });
    (accepted.load(Ordering::SeqCst), cache.stats().errors)
}

#[test]
fn each_sync_call_that_tries_redis_makes_one_connection_attempt() {
    let (port, accepted) = closing_port();
    let cache = cache_on(port);
    let (connections, errors) = attempts(&cache, &accepted, || {
        assert_eq!(
            cache.get::<u32>("k", ["t"]),
            Err(MissKind::Unavailable.into())
        );
    });
    assert_eq!(connections, errors, "one connection per failed call");
}

#[test]
fn each_async_call_that_tries_redis_makes_one_connection_attempt() {
    let (port, accepted) = closing_port();
    let cache = cache_on(port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (connections, errors) = attempts(&cache, &accepted, || {
        runtime.block_on(async {
            assert_eq!(
                cache.get_async::<u32>("k", ["t"]).await,
                Err(MissKind::Unavailable.into())
            );
        });
    });
    // The failed call's own attempt: the runtime's connection is rtc's own, which does not
    // reconnect by itself (the next call after the pause opens a new one).
    assert_eq!(connections, errors, "one connection per failed call");
}
