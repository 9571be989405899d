//! Reader and writer loops that run beside a test until it tells them to stop, auditing every
//! answer against the [staleness model](crate::staleness).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::TaggedCache;

use crate::staleness::{items, tag, Audit, Data, Reading};

/// A flag that tells worker loops to stop.
#[derive(Default)]
pub struct Stop(AtomicBool);

impl Stop {
    /// Tells the workers to stop after their current call.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the workers were told to stop.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets the flag when dropped, so that a failing assertion in the test's own thread stops
    /// the workers instead of leaving `thread::scope` waiting for them forever.
    pub fn on_exit(&self) -> StopOnExit<'_> {
        StopOnExit(self)
    }
}

/// Sets its [`Stop`] when dropped (see [`Stop::on_exit`]).
pub struct StopOnExit<'a>(&'a Stop);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        self.0.set();
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

    /// The longest call recorded.
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

/// One reader: calls `load` on each of `items` until `stop`, auditing every answer against the
/// floor read before the call and, with `slowest`, timing every call.
pub fn read_until_stopped(
    items: impl Iterator<Item = u64>,
    data: &Data,
    audit: &Audit,
    stop: &Stop,
    slowest: Option<&Slowest>,
    load: impl Fn(&Data, u64) -> Reading,
) {
    for item in items {
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

/// Async twin of [`read_until_stopped`]; lets other tasks run between two calls.
pub async fn read_until_stopped_async<'a, F>(
    items: impl Iterator<Item = u64>,
    data: &'a Data,
    audit: &Audit,
    stop: &Stop,
    slowest: Option<&Slowest>,
    load: impl Fn(&'a Data, u64) -> F,
) where
    F: Future<Output = Reading>,
{
    for item in items {
        if stop.is_set() {
            break;
        }
        let floor = data.floor(item);
        let started = Instant::now();
        let got = load(data, item).await;
        if let Some(slowest) = slowest {
            slowest.record(started);
        }
        audit.check(item, floor, got);
        between_requests().await;
    }
}

/// Spawns one [`read_until_stopped_async`] task on `runtime` per seed in `seeds`, each reading
/// the items of its seed.
pub fn spawn_readers<F>(
    runtime: &tokio::runtime::Handle,
    seeds: std::ops::Range<u64>,
    data: &'static Data,
    audit: &'static Audit,
    stop: &'static Stop,
    slowest: Option<&'static Slowest>,
    load: impl Fn(&'static Data, u64) -> F + Copy + Send + 'static,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Future<Output = Reading> + Send + 'static,
{
    seeds
        .map(|seed| {
            let reads = items(seed, data.items());
            runtime.spawn(read_until_stopped_async(
                reads, data, audit, stop, slowest, load,
            ))
        })
        .collect()
}

/// One writer: changes each of `items` in turn with [`Data::change`], invalidating the item's
/// [tag] on `cache` until that succeeds, and pausing `pause` between changes, until `stop`.
pub fn write_until_stopped(
    items: impl Iterator<Item = u64>,
    data: &Data,
    stop: &Stop,
    pause: Duration,
    cache: &TaggedCache,
) {
    for item in items {
        if stop.is_set() {
            break;
        }
        data.change(item, || cache.invalidate([tag(item)]));
        std::thread::sleep(pause);
    }
}

/// Async twin of [`write_until_stopped`].
pub async fn write_until_stopped_async(
    items: impl Iterator<Item = u64>,
    data: &Data,
    stop: &Stop,
    pause: Duration,
    cache: &TaggedCache,
) {
    for item in items {
        if stop.is_set() {
            break;
        }
        data.change_async(item, || cache.invalidate_async([tag(item)]))
            .await;
        tokio::time::sleep(pause).await;
    }
}

/// What a server does between two requests: lets other tasks run. The async reader loops call
/// it, because a loop whose calls all return at once (Redis skipped during a back-off) would
/// never yield, and starve the runtime, the connection's reconnection included.
pub async fn between_requests() {
    tokio::task::yield_now().await;
}
