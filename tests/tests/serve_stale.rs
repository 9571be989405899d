//! Serve-stale on a real Redis: each option serves a value past its lifetime within its window
//! only; an invalidated, deleted or `invalidate_all`-ed entry is never served; a stale entry
//! wanted by 50 threads and 3 processes is refreshed once; a failing function behind the lock
//! runs once at a time. (The same in memory: `rtc/tests/cached_stale.rs`.)
//!
//! Entries live an hour; a test makes one stale by shortening what is left of its time to live
//! in Redis (`PEXPIRE`), exactly as the passing of time would: an entry written with a stale
//! window W is fresh while more than W is left. No assertion depends on timing.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::Duration;

use redis::Commands;
use rtc::{Lifetime, TaggedCache};
use rtc_tests::gates::{sleep_until, start_instant, wait_until, Latch, EVENT_LIMIT};
use rtc_tests::serve_stale::COUNTER_KEY;
use rtc_tests::statics::install;
use rtc_tests::{unique_namespace, RedisServer};

fn redis_cache(server: &RedisServer, label: &str) -> TaggedCache {
    TaggedCache::builder()
        .url(server.url())
        .namespace(unique_namespace(label))
        .build()
        .unwrap()
}

/// Leaves `left` of the time to live of every entry of `cache`'s namespace.
fn age(server: &RedisServer, cache: &TaggedCache, left: Duration) {
    let mut connection = server.connection();
    let pattern = cache.key_pattern().replacen('?', "e", 1);
    let entries: Vec<String> = connection.keys(pattern).unwrap();
    assert!(!entries.is_empty(), "an entry to age");
    for entry in entries {
        let millis = i64::try_from(left.as_millis()).unwrap();
        let _: bool = connection.pexpire(&entry, millis).unwrap();
    }
}

fn gone(server: &RedisServer, cache: &TaggedCache) -> bool {
    let pattern = cache.key_pattern().replacen('?', "e", 1);
    let entries: Vec<String> = server.connection().keys(pattern).unwrap();
    entries.is_empty()
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

static WINDOWS: OnceLock<TaggedCache> = OnceLock::new();
static WINDOWS_DATA: AtomicU64 = AtomicU64::new(1);
static WINDOWS_FAILING: AtomicBool = AtomicBool::new(false);

#[rtc::cached(
    cache = WINDOWS.get().unwrap(),
    tags = ["rates"],
    lifetime = 3600,
    stale_while_revalidate = 60,
    stale_if_error = 600
)]
fn rate(currency: String) -> Result<u64, String> {
    if WINDOWS_FAILING.load(Ordering::SeqCst) {
        return Err(format!("no rate for {currency}"));
    }
    Ok(WINDOWS_DATA.load(Ordering::SeqCst))
}

fn fresh_rate(cache: &TaggedCache) -> Option<u64> {
    cache.get(key_rate("EUR".into()).unwrap(), ["rates"]).ok()
}

#[test]
fn each_option_serves_the_stale_value_in_its_window_and_not_after_it() {
    let server = RedisServer::start();
    let cache = install(&WINDOWS, redis_cache(&server, "windows"));
    let eur = || rate("EUR".into());
    assert_eq!(eur(), Ok(1));
    assert_eq!(
        fresh_rate(cache),
        Some(1),
        "fresh: a low-level get finds it"
    );

    // 30 s past its lifetime (the stored window is the largest, 600 s): within
    // stale_while_revalidate, served at once and refreshed in the background.
    age(&server, cache, secs(570));
    assert_eq!(fresh_rate(cache), None, "stale: a low-level get misses it");
    WINDOWS_DATA.store(2, Ordering::SeqCst);
    assert_eq!(eur(), Ok(1));
    assert_eq!(cache.stats().stale_hits, 1);
    wait_until(EVENT_LIMIT, "the refresh stored", || {
        fresh_rate(cache) == Some(2)
    });

    // 100 s past: beyond stale_while_revalidate, within stale_if_error.
    age(&server, cache, secs(500));
    WINDOWS_FAILING.store(true, Ordering::SeqCst);
    assert_eq!(eur(), Ok(2), "the stale value instead of the error");
    assert_eq!(cache.stats().stale_hits, 2);
    WINDOWS_FAILING.store(false, Ordering::SeqCst);
    WINDOWS_DATA.store(3, Ordering::SeqCst);
    assert_eq!(eur(), Ok(3), "a call that succeeds computes, as on a miss");

    // Past every window the entry is gone from Redis: nothing stale to serve.
    age(&server, cache, Duration::from_millis(1));
    wait_until(EVENT_LIMIT, "the entry expired", || gone(&server, cache));
    WINDOWS_FAILING.store(true, Ordering::SeqCst);
    assert!(eur().is_err());
    assert_eq!(cache.stats().stale_hits, 2);
}

static NEVER: OnceLock<TaggedCache> = OnceLock::new();
static NEVER_DATA: AtomicU64 = AtomicU64::new(1);
static NEVER_FAILING: AtomicBool = AtomicBool::new(false);

#[rtc::cached(
    cache = NEVER.get().unwrap(),
    tags = [format!("account:{id}")],
    lifetime = 3600,
    stale_while_revalidate = 600,
    stale_if_error = 600
)]
fn balance(id: u64) -> Result<u64, String> {
    if NEVER_FAILING.load(Ordering::SeqCst) {
        return Err("the ledger is down".into());
    }
    Ok(id * 1000 + NEVER_DATA.load(Ordering::SeqCst))
}

#[test]
fn an_invalidated_deleted_or_invalidate_all_ed_entry_is_never_served_stale() {
    let server = RedisServer::start();
    let cache = install(&NEVER, redis_cache(&server, "never"));
    let fill = || {
        for id in 1..=3 {
            assert!(balance(id).is_ok());
        }
        age(&server, cache, secs(300));
    };
    let changes: [(&str, &dyn Fn() -> bool); 3] = [
        ("invalidate(tag)", &|| {
            cache.invalidate(["account:1", "account:2", "account:3"])
        }),
        ("invalidate_<fn>(args)", &|| (1..=3).all(invalidate_balance)),
        ("invalidate_all", &|| cache.invalidate_all()),
    ];
    for (round, (what, change)) in (2..).zip(changes) {
        NEVER_FAILING.store(false, Ordering::SeqCst);
        fill();
        assert!(change(), "{what}");
        NEVER_DATA.store(round, Ordering::SeqCst);
        // stale_while_revalidate: computed, not the stale value.
        assert_eq!(balance(1), Ok(1000 + round), "{what}");
        // stale_if_error: the error, not the stale value.
        NEVER_FAILING.store(true, Ordering::SeqCst);
        assert!(balance(2).is_err(), "{what}");
        assert!(balance(3).is_err(), "{what}");
    }
    assert_eq!(cache.stats().stale_hits, 0);
}

static LOW_LEVEL: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(cache = LOW_LEVEL.get().unwrap(), lifetime = 3600)]
fn plain(id: u64) -> u64 {
    id
}

#[rtc::cached(cache = LOW_LEVEL.get().unwrap(), lifetime = 3600, stale_if_error = 60)]
fn windowed(id: u64) -> Option<u64> {
    Some(id)
}

#[test]
fn entries_without_a_stale_window_are_read_with_no_pttl() {
    let server = RedisServer::start();
    let cache = install(&LOW_LEVEL, redis_cache(&server, "low-level"));
    let reads = |server: &RedisServer| {
        (
            server.command_calls("get"),
            server.command_calls("mget"),
            server.command_calls("pttl"),
        )
    };
    let reset = |server: &RedisServer| {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut server.connection())
            .unwrap();
    };
    assert!(cache.set("k", &1, ["t"], Lifetime::Default));
    // The first reads learn their tags' versions (an MGET and a PTTL of each); from then on
    // the connection knows them and a hit is one GET.
    assert_eq!(cache.get::<u64>("k", ["t"]), Ok(1));
    assert_eq!(plain(1), 1);
    assert_eq!(plain(1), 1);
    reset(&server);
    assert_eq!(cache.get::<u64>("k", ["t"]), Ok(1));
    assert_eq!(plain(1), 1);
    assert_eq!(reads(&server), (2, 0, 0), "one GET each, no PTTL");

    // An entry written with a stale window: its own call site asks for PTTL with the read; a
    // reader that did not ask (here the low-level API, which does not name the function's tag
    // either) asks in a second round trip.
    assert_eq!(windowed(2), Some(2));
    assert_eq!(windowed(2), Some(2));
    reset(&server);
    assert_eq!(windowed(2), Some(2));
    assert_eq!(reads(&server), (1, 0, 1), "GET and PTTL in one round trip");
    let key = key_windowed(2).unwrap();
    assert_eq!(cache.get::<u64>(&key, rtc::NO_TAGS), Ok(2));
    assert_eq!(
        reads(&server),
        (2, 1, 2),
        "then GET, and the function's tag with the entry's PTTL"
    );
}

static REFRESHED: OnceLock<TaggedCache> = OnceLock::new();
static REFRESHED_URL: OnceLock<String> = OnceLock::new();

// The worker's `refreshed` too: one entry, refreshed under one Redis lock.
rtc_tests::refreshed_function!(REFRESHED.get().unwrap(), REFRESHED_URL.get().unwrap());

fn computations(server: &RedisServer) -> u64 {
    let count: Option<u64> = server.connection().get(COUNTER_KEY).unwrap();
    count.unwrap_or(0)
}

#[test]
fn a_stale_entry_wanted_by_50_threads_and_3_processes_is_refreshed_once() {
    let server = RedisServer::start();
    let namespace = unique_namespace("refreshed");
    let url = server.url();
    REFRESHED_URL.set(url.clone()).unwrap();
    let cache = install(
        &REFRESHED,
        TaggedCache::builder()
            .url(&url)
            .namespace(&namespace)
            .build()
            .unwrap(),
    );
    assert_eq!(refreshed(), 1);
    age(&server, cache, secs(300));
    let (start_at, start_ms) = start_instant(Duration::from_millis(1500));
    let children: Vec<Child> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_stale_worker"))
                .args([&url, &namespace, "50", &start_ms])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the worker binary starts")
        })
        .collect();
    let results: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    sleep_until(start_at);
                    refreshed()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    // The stale value, or the refreshed one for a caller that came after it landed.
    assert!(
        results.iter().all(|run| matches!(run, 1 | 2)),
        "{results:?}"
    );
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a worker failed");
        let printed = String::from_utf8(output.stdout).unwrap();
        let answers: Vec<&str> = printed.lines().collect();
        assert_eq!(answers.len(), 50);
        assert!(answers
            .iter()
            .all(|line| matches!(*line, "result 1" | "result 2")));
    }
    let key = key_refreshed().unwrap();
    wait_until(EVENT_LIMIT, "the refresh stored", || {
        cache.get::<u64>(&key, rtc::NO_TAGS) == Ok(2)
    });
    assert_eq!(
        computations(&server),
        2,
        "the first computation and one refresh"
    );
}

static LOCKED: OnceLock<TaggedCache> = OnceLock::new();
static RUNNING: AtomicU64 = AtomicU64::new(0);
static MOST_AT_ONCE: AtomicU64 = AtomicU64::new(0);
static LOCKED_RUNS: AtomicU64 = AtomicU64::new(0);
static LOCKED_FAILING: AtomicBool = AtomicBool::new(false);

#[rtc::cached(
    cache = LOCKED.get().unwrap(),
    lock = true,
    lock_timeout = 60,
    lifetime = 3600,
    stale_if_error = 600
)]
fn upstream(id: u64) -> Result<u64, String> {
    LOCKED_RUNS.fetch_add(1, Ordering::SeqCst);
    let running = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_AT_ONCE.fetch_max(running, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1));
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    match LOCKED_FAILING.load(Ordering::SeqCst) {
        true => Err("upstream is down".into()),
        false => Ok(id),
    }
}

fn hundred_threads(id: u64) -> Vec<Result<u64, String>> {
    let start = Barrier::new(100);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..100)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    upstream(id)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn a_hundred_threads_against_a_failing_function_compute_one_at_a_time_or_share_the_stale_value() {
    let server = RedisServer::start();
    let cache = install(&LOCKED, redis_cache(&server, "locked"));
    LOCKED_FAILING.store(true, Ordering::SeqCst);
    assert!(hundred_threads(1).iter().all(Result::is_err));
    assert_eq!(
        MOST_AT_ONCE.load(Ordering::SeqCst),
        1,
        "one computation at a time"
    );
    assert_eq!(LOCKED_RUNS.load(Ordering::SeqCst), 100);

    LOCKED_FAILING.store(false, Ordering::SeqCst);
    assert_eq!(upstream(2), Ok(2));
    age(&server, cache, secs(300));
    LOCKED_FAILING.store(true, Ordering::SeqCst);
    let runs = LOCKED_RUNS.load(Ordering::SeqCst);
    assert_eq!(
        hundred_threads(2),
        vec![Ok(2); 100],
        "the stale value for every caller"
    );
    assert_eq!(MOST_AT_ONCE.load(Ordering::SeqCst), 1);
    assert!(LOCKED_RUNS.load(Ordering::SeqCst) - runs < 100);
    assert_eq!(cache.stats().stale_hits, 100);
}

static LATE: OnceLock<TaggedCache> = OnceLock::new();
static LATE_DATA: AtomicU64 = AtomicU64::new(1);
static LATE_SLOW: AtomicBool = AtomicBool::new(false);
static LATE_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();
static LATE_RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[rtc::cached(
    cache = LATE.get().unwrap(),
    tags = ["catalogue"],
    lifetime = 3600,
    stale_if_error = 600,
    stale_if_slow = 0.2
)]
async fn catalogue(page: u64) -> Option<u64> {
    let data = LATE_DATA.load(Ordering::SeqCst);
    if LATE_SLOW.load(Ordering::SeqCst) {
        LATE_STARTED.notify_one();
        LATE_RELEASE.notified().await;
    }
    Some(page * 1000 + data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_async_computation_stores_its_value_unless_an_invalidation_landed_meanwhile() {
    let server = RedisServer::start();
    let cache = install(&LATE, redis_cache(&server, "late"));
    let fresh = |page: u64| async move {
        let key = key_catalogue(page).unwrap();
        cache.get_async::<u64>(key, ["catalogue"]).await.ok()
    };
    assert_eq!(catalogue(1).await, Some(1001));
    assert_eq!(catalogue(2).await, Some(2001));
    age(&server, cache, secs(300));
    LATE_DATA.store(2, Ordering::SeqCst);
    LATE_SLOW.store(true, Ordering::SeqCst);

    // Past its timeout the call returns the stale value; the computation stores its own.
    assert_eq!(catalogue(1).await, Some(1001));
    assert_eq!(cache.stats().stale_hits, 1);
    LATE_RELEASE.notify_one();
    let started = std::time::Instant::now();
    while fresh(1).await != Some(1002) {
        assert!(
            started.elapsed() < EVENT_LIMIT,
            "the late value never landed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The same, with an invalidation while the late computation runs: its value misses.
    let sets = cache.stats().sets;
    assert_eq!(catalogue(2).await, Some(2001));
    LATE_STARTED.notified().await;
    assert!(cache.invalidate_async(["catalogue"]).await);
    LATE_SLOW.store(false, Ordering::SeqCst);
    LATE_RELEASE.notify_one();
    while cache.stats().sets == sets {
        assert!(
            started.elapsed() < EVENT_LIMIT,
            "the late value never landed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fresh(2).await, None, "stamped before the invalidation");
    assert_eq!(catalogue(2).await, Some(2002));
}

static PANICKY: OnceLock<TaggedCache> = OnceLock::new();
static PANICKY_RUNS: AtomicU64 = AtomicU64::new(0);
static PANICKING: AtomicBool = AtomicBool::new(false);

#[rtc::cached(
    cache = PANICKY.get().unwrap(),
    lock = true,
    lock_timeout = 600,
    lifetime = 3600,
    stale_while_revalidate = 600
)]
fn flaky(id: u64) -> u64 {
    let run = PANICKY_RUNS.fetch_add(1, Ordering::SeqCst);
    assert!(!PANICKING.load(Ordering::SeqCst), "the refresh panics");
    id + run
}

#[test]
fn a_panicking_refresh_releases_its_lock_so_that_the_next_call_refreshes_at_once() {
    let server = RedisServer::start();
    let cache = install(&PANICKY, redis_cache(&server, "panicky"));
    let ((), warnings) = rtc_tests::warnings::capture(|| {
        assert_eq!(flaky(0), 0);
        age(&server, cache, secs(300));
        PANICKING.store(true, Ordering::SeqCst);
        assert_eq!(flaky(0), 0, "the stale value; the refresh panics elsewhere");
        wait_until(EVENT_LIMIT, "the refresh ran", || {
            PANICKY_RUNS.load(Ordering::SeqCst) == 2
        });
        PANICKING.store(false, Ordering::SeqCst);
        // Its lock (600 s) was released: a later call's refresh takes it and stores.
        wait_until(EVENT_LIMIT, "a second refresh stored", || {
            assert!(matches!(flaky(0), 0 | 2), "stale until refreshed");
            cache.stats().sets == 2
        });
    });
    let panics = warnings
        .iter()
        .filter(|warning| warning.message.contains("background refresh panicked"))
        .count();
    assert_eq!(panics, 1, "{warnings:?}");
    assert_eq!(PANICKY_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(flaky(0), 2, "the refreshed value");
}

/// Stale hits made while the entry's refresh is held at a gate.
const STALE_HITS: u64 = 20;

/// Opens its latch when dropped: a failing test does not leave a refresh held at its gate (and
/// its runtime waiting for it).
struct OpensOnDrop(&'static Latch);

impl Drop for OpensOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

static HELD: OnceLock<TaggedCache> = OnceLock::new();
static HELD_RUNS: AtomicU64 = AtomicU64::new(0);
static HELD_STARTED: Latch = Latch::new();
static HELD_RELEASE: Latch = Latch::new();

#[rtc::cached(
    cache = HELD.get().unwrap(),
    lifetime = 3600,
    stale_while_revalidate = 600
)]
fn held(id: u64) -> u64 {
    // The second run is the refresh: it waits at the gate.
    if HELD_RUNS.fetch_add(1, Ordering::SeqCst) == 1 {
        HELD_STARTED.open();
        HELD_RELEASE.wait("the test releases the refresh");
    }
    id + HELD_RUNS.load(Ordering::SeqCst)
}

#[test]
fn stale_hits_during_a_refresh_start_no_thread_of_their_own() {
    let server = RedisServer::start();
    let cache = install(&HELD, redis_cache(&server, "held"));
    let _release = OpensOnDrop(&HELD_RELEASE);
    assert_eq!(held(0), 1);
    age(&server, cache, secs(300));
    assert_eq!(held(0), 1, "the stale value; its refresh starts");
    HELD_STARTED.wait("the refresh started");
    for _ in 0..STALE_HITS {
        assert_eq!(held(0), 1, "the stale value while the refresh is held");
    }
    let stats = cache.stats();
    assert_eq!(stats.stale_hits, STALE_HITS + 1);
    assert_eq!(stats.refreshes, 1, "one thread for one refresh");
    HELD_RELEASE.open();
    wait_until(EVENT_LIMIT, "the refresh stored", || {
        cache.get::<u64>(key_held(0).unwrap(), rtc::NO_TAGS) == Ok(2)
    });
    assert_eq!(
        HELD_RUNS.load(Ordering::SeqCst),
        2,
        "one computation, one refresh"
    );
    assert_eq!(cache.stats().refreshes, 1);
}

static HELD_ASYNC: OnceLock<TaggedCache> = OnceLock::new();
static HELD_ASYNC_RUNS: AtomicU64 = AtomicU64::new(0);
static HELD_ASYNC_STARTED: Latch = Latch::new();
static HELD_ASYNC_RELEASE: Latch = Latch::new();

#[rtc::cached(
    cache = HELD_ASYNC.get().unwrap(),
    lifetime = 3600,
    stale_while_revalidate = 600
)]
async fn held_async(id: u64) -> u64 {
    // The second run is the refresh, on the blocking pool: it may block there at the gate.
    if HELD_ASYNC_RUNS.fetch_add(1, Ordering::SeqCst) == 1 {
        HELD_ASYNC_STARTED.open();
        HELD_ASYNC_RELEASE.wait("the test releases the refresh");
    }
    id + HELD_ASYNC_RUNS.load(Ordering::SeqCst)
}

#[test]
fn async_stale_hits_during_a_refresh_start_no_task_of_their_own() {
    let server = RedisServer::start();
    let cache = install(&HELD_ASYNC, redis_cache(&server, "held-async"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Declared after the runtime, so dropped before it.
    let _release = OpensOnDrop(&HELD_ASYNC_RELEASE);
    assert_eq!(runtime.block_on(held_async(0)), 1);
    age(&server, cache, secs(300));
    assert_eq!(runtime.block_on(held_async(0)), 1, "the stale value");
    HELD_ASYNC_STARTED.wait("the refresh started");
    for _ in 0..STALE_HITS {
        assert_eq!(runtime.block_on(held_async(0)), 1);
    }
    let stats = cache.stats();
    assert_eq!(stats.stale_hits, STALE_HITS + 1);
    assert_eq!(stats.refreshes, 1, "one blocking task for one refresh");
    HELD_ASYNC_RELEASE.open();
    wait_until(EVENT_LIMIT, "the refresh stored", || {
        cache.get::<u64>(key_held_async(0).unwrap(), rtc::NO_TAGS) == Ok(2)
    });
    assert_eq!(HELD_ASYNC_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().refreshes, 1);
}
