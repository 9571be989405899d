//! The data model and the bookkeeping shared by the fault tests.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rtc::TaggedCache;
use rtc_tests::{unique_namespace, RedisServer};

/// Short timeouts, so that a dead or frozen server costs a test little time.
pub const SOCKET_TIMEOUT: Duration = Duration::from_millis(300);

/// A cache on `server` with [`SOCKET_TIMEOUT`] and a namespace of its own.
pub fn cache_on(server: &RedisServer, label: &str) -> TaggedCache {
    builder_on(server, label).build().expect("valid settings")
}

pub fn builder_on(server: &RedisServer, label: &str) -> rtc::TaggedCacheBuilder {
    TaggedCache::builder()
        .namespace(unique_namespace(label))
        .url(server.url())
        .socket_timeout(SOCKET_TIMEOUT)
        .socket_connect_timeout(SOCKET_TIMEOUT)
}

/// Puts `cache` in the static a decorated function reads it from (once per process).
pub fn install(slot: &'static OnceLock<TaggedCache>, cache: TaggedCache) -> &'static TaggedCache {
    assert!(slot.set(cache).is_ok(), "each cache is installed once");
    slot.get().unwrap()
}

/// The tag of one item.
pub fn tag(item: u64) -> String {
    format!("item:{item}")
}

/// How long a writer retries an invalidation before the test fails.
const GIVE_UP: Duration = Duration::from_secs(20);

/// Items whose data has a version. A writer bumps an item's version, then invalidates its tag;
/// once the invalidation reported success the new version is the item's *floor*: no call that
/// starts afterwards may answer with an older version.
pub struct Data {
    versions: Vec<AtomicU64>,
    floors: Vec<AtomicU64>,
}

/// What a decorated function returns: the item (so a value served for the wrong item shows)
/// and the version it was computed from.
pub type Reading = (u64, u64);

impl Data {
    pub fn new(items: u64) -> Self {
        Self {
            versions: (0..items).map(|_| AtomicU64::new(1)).collect(),
            floors: (0..items).map(|_| AtomicU64::new(1)).collect(),
        }
    }

    pub fn items(&self) -> u64 {
        self.versions.len() as u64
    }

    /// What a computation of `item` returns now.
    pub fn read(&self, item: u64) -> Reading {
        (item, self.versions[item as usize].load(Ordering::SeqCst))
    }

    /// The oldest version a call starting now may return.
    pub fn floor(&self, item: u64) -> u64 {
        self.floors[item as usize].load(Ordering::SeqCst)
    }

    /// Changes `item`, then runs `invalidate` until it reports success (the application's
    /// retry); the new version becomes the floor only then.
    pub fn change(&self, item: u64, mut invalidate: impl FnMut() -> bool) {
        let version = self.bump(item);
        let started = Instant::now();
        while !invalidate() {
            assert!(
                started.elapsed() < GIVE_UP,
                "the invalidation never succeeded"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.publish(item, version);
    }

    /// Async twin of [`Data::change`].
    pub async fn change_async<F: Future<Output = bool>>(
        &self,
        item: u64,
        mut invalidate: impl FnMut() -> F,
    ) {
        let version = self.bump(item);
        let started = Instant::now();
        while !invalidate().await {
            assert!(
                started.elapsed() < GIVE_UP,
                "the invalidation never succeeded"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.publish(item, version);
    }

    /// Changes `item` and tries to invalidate once; the floor moves only if that succeeded.
    pub fn change_once(&self, item: u64, invalidate: impl FnOnce() -> bool) -> bool {
        let version = self.bump(item);
        let invalidated = invalidate();
        if invalidated {
            self.publish(item, version);
        }
        invalidated
    }

    fn bump(&self, item: u64) -> u64 {
        self.versions[item as usize].fetch_add(1, Ordering::SeqCst) + 1
    }

    fn publish(&self, item: u64, version: u64) {
        self.floors[item as usize].fetch_max(version, Ordering::SeqCst);
    }
}

/// Every call's answer, checked against the floor read when the call started.
#[derive(Default)]
pub struct Audit {
    calls: AtomicU64,
    wrong: Mutex<Vec<String>>,
}

impl Audit {
    /// Checks one call of `item` that started with `floor` and returned `got`.
    pub fn check(&self, item: u64, floor: u64, got: Reading) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (got_item, got_version) = got;
        if got_item != item || got_version < floor {
            let mut wrong = self.wrong.lock().unwrap_or_else(PoisonError::into_inner);
            wrong.push(format!(
                "item {item}: got {got:?}, but version {floor} was invalidated before the call started"
            ));
        }
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Panics with the first wrong answers, if any.
    pub fn assert_all_fresh(&self) {
        let wrong = self.wrong.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            wrong.is_empty(),
            "{} of {} calls returned stale or wrong values, e.g.:\n{}",
            wrong.len(),
            self.calls(),
            wrong
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A flag that tells worker loops to stop.
#[derive(Default)]
pub struct Stop(AtomicBool);

impl Stop {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets the flag when dropped, so that a failing assertion in the test's own thread stops
    /// the workers instead of leaving `thread::scope` waiting for them forever.
    pub fn on_exit(&self) -> StopOnExit<'_> {
        StopOnExit(self)
    }
}

pub struct StopOnExit<'a>(&'a Stop);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// A cheap deterministic sequence of items for worker `seed` (no `rand` needed).
pub fn items(seed: u64, count: u64) -> impl Iterator<Item = u64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % count
    })
}

/// Polls `condition` until it holds; returns how long that took, or panics after `limit`.
/// One reader thread: calls `load` on this seed's items until `stop`, auditing every answer and,
/// with `slowest`, timing every call.
pub fn read_until_stopped(
    seed: u64,
    data: &Data,
    audit: &Audit,
    stop: &Stop,
    slowest: Option<&Slowest>,
    load: impl Fn(&Data, u64) -> Reading,
) {
    for item in items(seed, data.items()) {
        if stop.is_set() {
            break;
        }
        let floor = data.floor(item);
        let started = Instant::now();
        let got = load(data, item);
        if let Some(slowest) = slowest {
            slowest.record(started);
        }
        audit.check(item, floor, got);
    }
}

pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

/// A value the spawned tasks of an async test can borrow: it lives as long as the test process.
pub fn forever<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// What a server does between two requests: lets other tasks run. The async reader loops call
/// it, because a loop whose calls all return at once (Redis skipped during a back-off) would
/// never yield, and starve the runtime, the connection's reconnection included.
pub async fn between_requests() {
    tokio::task::yield_now().await;
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

/// The slowest call so far.
#[derive(Default)]
pub struct Slowest(AtomicU64);

impl Slowest {
    /// Records a call that started at `started` and just returned.
    pub fn record(&self, started: Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.0.fetch_max(micros, Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    /// Panics if a call took longer than `bound`.
    pub fn assert_at_most(&self, bound: Duration) {
        assert!(
            self.get() <= bound,
            "a call took {:?}, more than {bound:?}",
            self.get()
        );
    }
}
