//! A lock holder that stops before releasing (its future dropped, its function panicking) lets
//! go of the entry's Redis lock at once, instead of leaving it to expire after `lock_timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use redis::Commands;
use rtc::TaggedCache;
use rtc_tests::gates::wait_until;
use rtc_tests::statics::install;
use rtc_tests::{unique_namespace, RedisServer};

static CANCELLED: OnceLock<TaggedCache> = OnceLock::new();
static PANICKING: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(key = "slow", lock = true, lock_timeout = 60, cache = CANCELLED.get().unwrap(), skip(started))]
async fn never_finishes(started: tokio::sync::oneshot::Sender<()>) -> u64 {
    let _ = started.send(());
    std::future::pending::<()>().await;
    0
}

#[rtc::cached(key = "boom", lock = true, lock_timeout = 60, cache = PANICKING.get().unwrap(), skip(runs))]
fn panics(runs: &AtomicU64) -> u64 {
    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("the first computation fails");
    }
    1
}

fn cache_on(server: &RedisServer, label: &str) -> TaggedCache {
    TaggedCache::builder()
        .namespace(unique_namespace(label))
        .url(server.url())
        .build()
        .unwrap()
}

/// The lock keys present in the server now.
fn locks(probe: &mut redis::Connection) -> Vec<String> {
    probe.keys("rtc:l:*").unwrap()
}

/// Waits until no lock key is left; the locks live 60 s, so an expiry cannot pass for a
/// release here.
fn wait_for_no_lock(probe: &mut redis::Connection) {
    wait_until(Duration::from_secs(20), "the lock released", || {
        locks(probe).is_empty()
    });
}

#[test]
fn a_cancelled_async_holder_releases_its_lock() {
    let server = RedisServer::start();
    install(&CANCELLED, cache_on(&server, "cancelled"));
    let mut probe = server.connection();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (started, computing) = tokio::sync::oneshot::channel();
        let holder = tokio::spawn(never_finishes(started));
        computing.await.expect("the holder computes");
        assert_eq!(locks(&mut probe).len(), 1, "the holder took the lock");
        holder.abort();
        let _ = holder.await;
        // The release runs on the runtime: give it the chance.
        tokio::task::spawn_blocking(move || wait_for_no_lock(&mut probe))
            .await
            .unwrap();
    });
}

#[test]
fn a_panicking_holder_releases_its_lock() {
    let server = RedisServer::start();
    install(&PANICKING, cache_on(&server, "panicking"));
    let mut probe = server.connection();
    let runs = AtomicU64::new(0);
    let first = std::panic::catch_unwind(|| panics(&runs));
    assert!(first.is_err(), "the panic reaches the caller");
    // Released during the unwind.
    wait_for_no_lock(&mut probe);
    assert_eq!(panics(&runs), 1, "the next call computes at once");
}
