//! Serve-stale on an in-memory cache: `stale_while_revalidate`, `stale_if_error` and
//! `timeout` serve a value past its lifetime within their window only, and never a value whose
//! tags were invalidated or that was deleted. (The same on Redis, and across processes:
//! `tests/tests/serve_stale.rs`.)
//!
//! Entries live 50 ms; a test waits until an entry is stale (a low-level `get`, which never
//! returns a stale value, misses) or gone, then calls; it waits for a background write by
//! counting writes (`stats().sets`), since what was written is fresh for 50 ms only. No
//! assertion depends on timing.
#![deny(warnings)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rtc::{cached, TaggedCache};

mod support;

use support::Calls;

fn memory_cache() -> TaggedCache {
    TaggedCache::builder().in_memory().build().unwrap()
}

/// Polls `condition` until it holds; fails after 30 s (an event that never came).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what}: never");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A door a body waits at until the test opens it.
struct Door {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Door {
    const fn new() -> Self {
        Door {
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

static REVALIDATED: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static REVALIDATED_RUNS: Calls = Calls::new();
static REVALIDATED_DATA: AtomicU64 = AtomicU64::new(1);

#[cached(cache = &REVALIDATED, tags = ["prices"], lifetime = 0.05, stale_while_revalidate = 60)]
fn price(id: u64) -> u64 {
    REVALIDATED_RUNS.count();
    id * 1000 + REVALIDATED_DATA.load(Ordering::SeqCst)
}

fn fresh_price(id: u64) -> Option<u64> {
    REVALIDATED.get(key_price(id)?, ["prices"]).ok()
}

#[test]
fn stale_while_revalidate_returns_the_stale_value_at_once_and_refreshes_it_in_the_background() {
    assert_eq!(price(1), 1001);
    wait_until("the entry is past its lifetime", || {
        fresh_price(1).is_none()
    });
    REVALIDATED_DATA.store(2, Ordering::SeqCst);
    assert_eq!(price(1), 1001, "the stale value, at once");
    assert_eq!(REVALIDATED.stats().stale_hits, 1);
    wait_until("the background refresh stored", || {
        REVALIDATED.stats().sets == 2
    });
    assert_eq!(REVALIDATED_RUNS.get(), 2);

    // `refresh_price` writes the entry with the same stale window as the calls.
    assert_eq!(refresh_price(1), 1002);
    wait_until("past its lifetime again", || fresh_price(1).is_none());
    assert_eq!(price(1), 1002, "stale, at once");
    assert_eq!(REVALIDATED.stats().stale_hits, 2);
}

static SHORT: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static SHORT_RUNS: Calls = Calls::new();

#[cached(cache = &SHORT, lifetime = 0.05, stale_while_revalidate = 0.05)]
fn short_window(id: u64) -> u64 {
    SHORT_RUNS.count() as u64 + id
}

#[test]
fn past_its_window_an_entry_is_not_served_but_recomputed() {
    assert_eq!(short_window(0), 0);
    wait_until("the entry is gone", || {
        SHORT.purge_expired();
        SHORT.local_entry_count() == Some(0)
    });
    assert_eq!(short_window(0), 1, "computed again");
    assert_eq!(SHORT.stats().stale_hits, 0);
}

static FALLBACK: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static FAILING: AtomicBool = AtomicBool::new(false);

#[cached(cache = &FALLBACK, tags = [format!("user:{id}")], lifetime = 0.05, stale_if_error = 60)]
fn profile(id: u64) -> Result<String, String> {
    if FAILING.load(Ordering::SeqCst) {
        return Err("the profile service is down".into());
    }
    Ok(format!("profile {id}"))
}

#[cached(cache = &FALLBACK, lifetime = 0.05, stale_if_error = 60)]
fn optional(id: u64) -> Option<u64> {
    (!FAILING.load(Ordering::SeqCst)).then_some(id)
}

fn fresh_profile(id: u64) -> bool {
    FALLBACK
        .get::<String>(key_profile(id).unwrap(), [format!("user:{id}")])
        .is_ok()
}

#[test]
fn stale_if_error_returns_a_current_stale_value_instead_of_a_failure_and_never_an_invalidated_one()
{
    FAILING.store(false, Ordering::SeqCst);
    for id in 1..=4 {
        assert_eq!(profile(id).as_deref(), Ok(format!("profile {id}").as_str()));
    }
    assert_eq!(optional(7), Some(7));
    wait_until("the entries are past their lifetime", || {
        (1..=4).all(|id| !fresh_profile(id))
    });
    FAILING.store(true, Ordering::SeqCst);
    assert_eq!(
        profile(1),
        Ok("profile 1".into()),
        "the stale value instead of Err"
    );
    assert_eq!(optional(7), Some(7), "and instead of None");
    let stats = FALLBACK.stats();
    assert_eq!(stats.stale_hits, 2);
    // An invalidated tag, a deleted entry, a function-wide or cache-wide invalidation: the
    // failure is returned.
    assert!(FALLBACK.invalidate(["user:2"]));
    assert!(invalidate_profile(3));
    assert!(profile(1).is_ok());
    assert!(profile(2).is_err(), "tag invalidated");
    assert!(profile(3).is_err(), "entry deleted");
    assert!(invalidate_all_profile());
    assert!(profile(1).is_err(), "function invalidated");
    assert!(FALLBACK.invalidate_all());
    assert!(profile(4).is_err(), "cache invalidated");
    assert_eq!(optional(7), None);
    FAILING.store(false, Ordering::SeqCst);
}

static LATE: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static LATE_DATA: AtomicU64 = AtomicU64::new(1);
static LATE_DOORS: [Door; 2] = [Door::new(), Door::new()];
static LATE_SLOW: AtomicBool = AtomicBool::new(false);

#[cached(cache = &LATE, tags = ["reports"], lifetime = 0.05, stale_if_error = 60, stale_if_slow = 0.1)]
fn report(id: u64) -> u64 {
    let data = LATE_DATA.load(Ordering::SeqCst);
    if LATE_SLOW.load(Ordering::SeqCst) {
        LATE_DOORS[id as usize - 1].pass();
    }
    id * 1000 + data
}

fn fresh_report(id: u64) -> Option<u64> {
    LATE.get(key_report(id)?, ["reports"]).ok()
}

#[test]
fn a_computation_past_its_timeout_gives_way_to_the_stale_value_then_stores_its_own() {
    assert_eq!(report(1), 1001);
    assert_eq!(report(2), 2001);
    wait_until("the entries are past their lifetime", || {
        fresh_report(1).is_none() && fresh_report(2).is_none()
    });
    LATE_DATA.store(2, Ordering::SeqCst);
    LATE_SLOW.store(true, Ordering::SeqCst);
    let sets = LATE.stats().sets;
    assert_eq!(report(1), 1001, "the stale value once the timeout passed");
    assert_eq!(LATE.stats().stale_hits, 1);
    LATE_DOORS[0].open();
    wait_until("the late value was stored", || {
        LATE.stats().sets == sets + 1
    });

    // An invalidation while a late computation runs: what it stores is stamped with the
    // versions read before it started, so it misses.
    let sets = LATE.stats().sets;
    assert_eq!(report(2), 2001, "stale, once the timeout passed");
    assert!(LATE.invalidate(["reports"]));
    LATE_DATA.store(3, Ordering::SeqCst);
    LATE_SLOW.store(false, Ordering::SeqCst);
    LATE_DOORS[1].open();
    wait_until("the late value was stored", || {
        LATE.stats().sets == sets + 1
    });
    assert_eq!(fresh_report(2), None);
    assert_eq!(report(2), 2003);
}

static RACED: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static RACED_DATA: AtomicU64 = AtomicU64::new(1);
static RACED_RUNS: Calls = Calls::new();
static RACED_STARTED: Door = Door::new();
static RACED_DOOR: Door = Door::new();
static RACED_SLOW: AtomicBool = AtomicBool::new(false);

#[cached(
    cache = &RACED,
    tags = [format!("doc:{id}")],
    lifetime = 0.05,
    stale_if_error = 60,
    stale_while_revalidate = 60,
    stale_if_slow = 0.05
)]
fn document(id: u64) -> u64 {
    RACED_RUNS.count();
    let data = RACED_DATA.load(Ordering::SeqCst);
    if RACED_SLOW.load(Ordering::SeqCst) {
        RACED_STARTED.open();
        RACED_DOOR.pass();
    }
    id * 1000 + data
}

fn fresh_document(id: u64) -> Option<u64> {
    RACED.get(key_document(id)?, [format!("doc:{id}")]).ok()
}

#[test]
fn an_invalidation_during_a_background_refresh_wins_over_what_the_refresh_stores() {
    assert_eq!(document(1), 1001);
    wait_until("past its lifetime", || fresh_document(1).is_none());
    RACED_SLOW.store(true, Ordering::SeqCst);
    let sets = RACED.stats().sets;
    assert_eq!(document(1), 1001, "stale, at once");
    RACED_STARTED.pass();
    // The refresh computed from the old data; the data changes and the tag is invalidated
    // while it runs.
    RACED_DATA.store(2, Ordering::SeqCst);
    assert!(RACED.invalidate(["doc:1"]));
    RACED_SLOW.store(false, Ordering::SeqCst);
    RACED_DOOR.open();
    wait_until("the refresh stored", || RACED.stats().sets == sets + 1);
    assert_eq!(
        fresh_document(1),
        None,
        "stamped before the invalidation: a miss"
    );
    let runs = RACED_RUNS.get();
    assert_eq!(
        document(1),
        1002,
        "neither the refreshed nor the stale value"
    );
    assert_eq!(RACED_RUNS.get(), runs + 1);
}

static PANICKY: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static PANICKY_RUNS: Calls = Calls::new();
static PANICKING: AtomicBool = AtomicBool::new(false);
static LOG: Mutex<String> = Mutex::new(String::new());

#[cached(cache = &PANICKY, lifetime = 0.05, stale_while_revalidate = 60)]
fn flaky(id: u64) -> u64 {
    let run = PANICKY_RUNS.count() as u64;
    assert!(!PANICKING.load(Ordering::SeqCst), "the refresh panics");
    id + run
}

/// What the subscriber writes goes to [`LOG`].
struct Log;

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn panic_warnings() -> usize {
    LOG.lock()
        .unwrap()
        .matches("a background refresh panicked")
        .count()
}

#[test]
fn a_panicking_background_refresh_is_contained_logged_once_and_tried_again_by_the_next_call() {
    use tracing_subscriber::util::SubscriberInitExt;
    let subscriber = tracing_subscriber::fmt()
        .with_writer(|| Log)
        .with_ansi(false)
        .finish();
    let _logging = subscriber.set_default();
    {
        let key = key_flaky(0).unwrap();
        let fresh = || PANICKY.get::<u64>(&key, rtc::NO_TAGS).ok();
        assert_eq!(flaky(0), 0);
        wait_until("past its lifetime", || fresh().is_none());
        PANICKING.store(true, Ordering::SeqCst);
        assert_eq!(flaky(0), 0, "the stale value; the refresh panics elsewhere");
        wait_until("the panic was logged", || panic_warnings() == 1);
        PANICKING.store(false, Ordering::SeqCst);
        assert_eq!(flaky(0), 0, "still stale; this call refreshes it again");
        wait_until("the second refresh stored", || PANICKY.stats().sets == 2);
        assert_eq!(PANICKY_RUNS.get(), 3);
        assert_eq!(panic_warnings(), 1);
    }
}

static FAILING_LOCKED: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static RUNNING: AtomicU64 = AtomicU64::new(0);
static MOST_AT_ONCE: AtomicU64 = AtomicU64::new(0);
static LOCKED_RUNS: Calls = Calls::new();
static LOCKED_FAILING: AtomicBool = AtomicBool::new(false);

#[cached(cache = &FAILING_LOCKED, lock = true, lock_timeout = 60, lifetime = 0.05, stale_if_error = 600)]
fn backend(id: u64) -> Result<u64, String> {
    LOCKED_RUNS.count();
    let running = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_AT_ONCE.fetch_max(running, Ordering::SeqCst);
    std::thread::yield_now();
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    match LOCKED_FAILING.load(Ordering::SeqCst) {
        true => Err("the backend is down".into()),
        false => Ok(id),
    }
}

fn hundred_calls(id: u64) -> Vec<Result<u64, String>> {
    let start = std::sync::Barrier::new(100);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..100)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    backend(id)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn a_hundred_threads_against_a_failing_function_compute_one_at_a_time_or_share_the_stale_value() {
    LOCKED_FAILING.store(true, Ordering::SeqCst);
    let results = hundred_calls(1);
    assert!(results.iter().all(Result::is_err));
    assert_eq!(
        MOST_AT_ONCE.load(Ordering::SeqCst),
        1,
        "one computation at a time"
    );
    assert_eq!(LOCKED_RUNS.get(), 100);

    LOCKED_FAILING.store(false, Ordering::SeqCst);
    assert_eq!(backend(2), Ok(2));
    let key = key_backend(2).unwrap();
    wait_until("past its lifetime", || {
        FAILING_LOCKED.get::<u64>(&key, rtc::NO_TAGS).is_err()
    });
    LOCKED_FAILING.store(true, Ordering::SeqCst);
    let runs = LOCKED_RUNS.get();
    let results = hundred_calls(2);
    assert_eq!(
        results,
        vec![Ok(2); 100],
        "the stale value for every caller"
    );
    assert_eq!(MOST_AT_ONCE.load(Ordering::SeqCst), 1);
    assert!(
        LOCKED_RUNS.get() - runs < 100,
        "waiters took the leader's stale value"
    );
    assert_eq!(FAILING_LOCKED.stats().stale_hits, 100);
}

static ASYNC: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static ASYNC_RUNS: Calls = Calls::new();
static ASYNC_DATA: AtomicU64 = AtomicU64::new(1);

#[cached(cache = &ASYNC, lifetime = 0.05, stale_while_revalidate = 60)]
async fn async_price(id: u64) -> u64 {
    // The runtime's timer: a refresh awaits its body with the runtime's handle.
    tokio::time::sleep(Duration::from_millis(1)).await;
    ASYNC_RUNS.count();
    id * 1000 + ASYNC_DATA.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_stale_entry_is_refreshed_in_the_background_with_the_runtime_at_hand() {
    assert_eq!(async_price(1).await, 1001);
    let key = key_async_price(1).unwrap();
    let fresh = || async { ASYNC.get_async::<u64>(&key, rtc::NO_TAGS).await.ok() };
    while fresh().await.is_some() {
        tokio::task::yield_now().await;
    }
    ASYNC_DATA.store(2, Ordering::SeqCst);
    assert_eq!(async_price(1).await, 1001);
    let started = Instant::now();
    while ASYNC.stats().sets < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ASYNC_RUNS.get(), 2);
}

static ELSEWHERE: LazyLock<TaggedCache> = LazyLock::new(memory_cache);
static ELSEWHERE_RUNS: Calls = Calls::new();

#[cached(cache = &ELSEWHERE, lifetime = 0.05, stale_while_revalidate = 60)]
async fn summary(id: u64) -> u64 {
    id + ELSEWHERE_RUNS.count() as u64
}

#[test]
fn an_async_stale_entry_is_refreshed_in_the_background_without_a_tokio_runtime() {
    // Another executor: no tokio runtime to spawn on, so the refresh gets a thread of its own.
    assert_eq!(futures_executor::block_on(summary(1)), 1);
    let key = key_summary(1).unwrap();
    wait_until("past its lifetime", || {
        ELSEWHERE.get::<u64>(&key, rtc::NO_TAGS).is_err()
    });
    assert_eq!(
        futures_executor::block_on(summary(1)),
        1,
        "the stale value, at once"
    );
    wait_until("the refresh stored", || ELSEWHERE.stats().sets == 2);
    assert_eq!(ELSEWHERE_RUNS.get(), 2);
    assert_eq!(
        futures_executor::block_on(summary(1)),
        2,
        "the refreshed value"
    );
}
