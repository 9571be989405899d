//! What the fault tests share beyond the test-support crate: caches with short timeouts, a
//! runtime, and a gate inside a computation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rtc::TaggedCache;
use rtc_tests::gates::wait_until;
use rtc_tests::{unique_namespace, RedisServer};

/// Short timeouts, so that a dead or frozen server costs a test little time.
pub const SOCKET_TIMEOUT: Duration = Duration::from_millis(300);

/// A cache on `server` with [`SOCKET_TIMEOUT`] and a namespace of its own.
pub fn cache_on(server: &RedisServer, label: &str) -> TaggedCache {
    builder_on(server, label).build().expect("valid settings")
}

/// The builder behind [`cache_on`], for tests that adjust it.
pub fn builder_on(server: &RedisServer, label: &str) -> rtc::TaggedCacheBuilder {
    TaggedCache::builder()
        .namespace(unique_namespace(label))
        .url(server.url())
        .response_timeout(SOCKET_TIMEOUT)
        .connect_timeout(SOCKET_TIMEOUT)
}

/// A multi-thread runtime for the async tests.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

const GATE_LIMIT: Duration = Duration::from_secs(10);

/// Holds a computation inside the body of a decorated function until the test lets it go, so an
/// invalidation can land between the body's read of the data and the store of its result.
#[derive(Default)]
pub struct Gate {
    armed: AtomicBool,
    entered: AtomicBool,
    released: AtomicBool,
}

impl Gate {
    /// The next body that passes the gate stops there.
    pub fn arm(&self) {
        self.entered.store(false, Ordering::SeqCst);
        self.released.store(false, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Called by the body: stops here if armed (the first body to come only), until released
    /// or, should the test have failed meanwhile, for 10 s at most.
    pub fn pass(&self) {
        if self.take() {
            let started = Instant::now();
            while !self.released.load(Ordering::SeqCst) && started.elapsed() < GATE_LIMIT {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Async twin of [`Gate::pass`].
    pub async fn pass_async(&self) {
        if self.take() {
            let started = Instant::now();
            while !self.released.load(Ordering::SeqCst) && started.elapsed() < GATE_LIMIT {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Waits until a body stopped at the gate.
    pub fn wait_entered(&self) {
        wait_until(Duration::from_secs(10), "a body reached the gate", || {
            self.entered.load(Ordering::SeqCst)
        });
    }

    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    fn take(&self) -> bool {
        let took = self
            .armed
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if took {
            self.entered.store(true, Ordering::SeqCst);
        }
        took
    }
}
