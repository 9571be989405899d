//! `lock = true`: one computation per cold entry across threads, tasks and processes.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Commands;
use rtc::{CacheInfo, TaggedCache};
use rtc_tests::gates::{wait_until, Latch, EVENT_LIMIT};
use rtc_tests::stampede::{COUNTER_KEY, GET_WITH_KEY, SLOW_BODY, VALUE};
use rtc_tests::statics::install;
use rtc_tests::{unique_namespace, RedisServer};

/// One cache per decorated function below (each test runs its own server); `cache = ...` is
/// evaluated without the arguments in scope (the generated `invalidate_all_<fn>()` has none).
static SLOW: OnceLock<TaggedCache> = OnceLock::new();
static SLOW_ASYNC: OnceLock<TaggedCache> = OnceLock::new();
static SLOW_IN_MEMORY: OnceLock<TaggedCache> = OnceLock::new();
static PANICS: OnceLock<TaggedCache> = OnceLock::new();
static HELD: OnceLock<TaggedCache> = OnceLock::new();

/// The same entry as the worker's `slow` (same key, no tags), so both coordinate on one lock.
#[rtc::cached(key = "cold", lock = true, lock_timeout = 10, cache = SLOW.get().unwrap(), skip(url))]
fn slow(url: &str) -> u64 {
    let mut connection = redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .expect("reaches Redis");
    let _: u64 = connection.incr(COUNTER_KEY, 1).expect("INCR");
    std::thread::sleep(SLOW_BODY);
    VALUE
}

fn executions(server: &RedisServer) -> u64 {
    let mut connection = server.connection();
    connection
        .get::<_, Option<u64>>(COUNTER_KEY)
        .unwrap()
        .unwrap_or(0)
}

fn worker(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_stampede_worker"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker binary starts")
}

/// An instant 1.5 s ahead, when every thread of every process calls at once, and the same
/// instant in Unix milliseconds for the workers' command lines.
fn start_together() -> (SystemTime, String) {
    let start_at = SystemTime::now() + Duration::from_millis(1500);
    let start_ms = start_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    (start_at, start_ms)
}

/// Runs `call` on `threads` threads of this process at `start_at`; their results in order.
fn call_together(start_at: SystemTime, threads: usize, call: impl Fn() -> u64 + Sync) -> Vec<u64> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    if let Ok(wait) = start_at.duration_since(SystemTime::now()) {
                        std::thread::sleep(wait);
                    }
                    call()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect()
    })
}

/// Waits for each worker and checks that each of its `threads` threads printed [`VALUE`].
fn each_worker_answered(children: Vec<Child>, threads: usize) {
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a worker failed");
        let printed = String::from_utf8(output.stdout).unwrap();
        let answered = printed
            .lines()
            .filter(|line| *line == format!("result {VALUE}"))
            .count();
        assert_eq!(answered, threads);
    }
}

#[test]
fn one_computation_for_100_threads_and_4_processes_of_25_threads() {
    let server = RedisServer::start();
    let namespace = unique_namespace("stampede");
    let url = server.url();
    install(
        &SLOW,
        TaggedCache::builder()
            .url(&url)
            .namespace(&namespace)
            .build()
            .unwrap(),
    );
    let (start_at, start_ms) = start_together();
    let children: Vec<Child> = (0..4)
        .map(|_| worker(&["stampede", &url, &namespace, "25", &start_ms]))
        .collect();
    let results = call_together(start_at, 100, || slow(&url));
    assert_eq!(results, vec![VALUE; 100]);
    each_worker_answered(children, 25);
    assert_eq!(
        executions(&server),
        1,
        "the body ran once for 200 callers in 5 processes"
    );
}

#[test]
fn get_with_computes_once_for_threads_of_3_processes() {
    let server = RedisServer::start();
    let namespace = unique_namespace("get-with-stampede");
    let url = server.url();
    let cache = TaggedCache::builder()
        .url(&url)
        .namespace(&namespace)
        .build()
        .unwrap();
    let (start_at, start_ms) = start_together();
    let children: Vec<Child> = (0..2)
        .map(|_| worker(&["get_with", &url, &namespace, "10", &start_ms]))
        .collect();
    let results = call_together(start_at, 10, || {
        cache
            .entry(GET_WITH_KEY, ["t"])
            .lock_timeout(Duration::from_secs(10))
            .get_with(|| {
                let mut connection = server.connection();
                let _: u64 = connection.incr(COUNTER_KEY, 1).unwrap();
                std::thread::sleep(SLOW_BODY);
                VALUE
            })
    });
    assert_eq!(results, vec![VALUE; 10]);
    each_worker_answered(children, 10);
    assert_eq!(
        executions(&server),
        1,
        "get_with computed once for 30 callers in 3 processes"
    );
}

#[rtc::cached(key = "cold-async", lock = true, cache = SLOW_ASYNC.get().unwrap(), skip(runs))]
async fn slow_async(runs: &AtomicUsize) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(SLOW_BODY).await;
    VALUE
}

#[test]
fn one_computation_for_100_async_tasks() {
    let server = RedisServer::start();
    let cache = install(
        &SLOW_ASYNC,
        TaggedCache::builder()
            .url(server.url())
            .namespace(unique_namespace("tasks"))
            .build()
            .unwrap(),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let runs = Arc::clone(&runs);
                tokio::spawn(async move { slow_async(&runs).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), VALUE);
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(cache.stats().lock_waits >= 1);
}

#[rtc::cached(key = "cold-memory", lock = true, cache = SLOW_IN_MEMORY.get().unwrap(), skip(runs))]
fn slow_in_memory(runs: &AtomicUsize) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    VALUE
}

#[test]
fn the_in_memory_backend_honours_the_lock_in_process() {
    install(
        &SLOW_IN_MEMORY,
        TaggedCache::builder().in_memory().build().unwrap(),
    );
    let runs = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..50 {
            scope.spawn(|| assert_eq!(slow_in_memory(&runs), VALUE));
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Opened by the first computation of `panics_the_first_time`, once it holds the entry.
static FIRST_HOLDS: Latch = Latch::new();

/// The first computation signals that it holds the entry, waits until another caller waits for
/// it, and dies.
#[rtc::cached(key = "panics-once", lock = true, lock_timeout = 2, cache = PANICS.get().unwrap(), skip(runs))]
fn panics_the_first_time(runs: &AtomicUsize) -> u64 {
    let run = runs.fetch_add(1, Ordering::SeqCst);
    if run == 0 {
        FIRST_HOLDS.open();
        let cache = PANICS.get().unwrap();
        wait_until(EVENT_LIMIT, "a second caller waits", || {
            cache.stats().lock_waits >= 1
        });
    }
    assert!(run > 0, "the first computation dies");
    VALUE
}

#[test]
fn a_holder_that_panics_hands_the_entry_to_another_caller() {
    let server = RedisServer::start();
    install(
        &PANICS,
        TaggedCache::builder()
            .url(server.url())
            .namespace(unique_namespace("panic"))
            .build()
            .unwrap(),
    );
    let runs = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| panics_the_first_time(&runs));
        FIRST_HOLDS.wait("the first caller holds the entry");
        let second = scope.spawn(|| panics_the_first_time(&runs));
        assert!(first.join().is_err(), "the holder panicked");
        assert_eq!(second.join().unwrap(), VALUE, "another caller took over");
    });
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[rtc::cached(key = "held", lock = true, lock_timeout = 2, cache = HELD.get().unwrap())]
fn takes_over_a_held_entry() -> u64 {
    VALUE
}

#[test]
fn a_killed_holder_process_releases_the_entry_within_lock_timeout() {
    let server = RedisServer::start();
    let namespace = unique_namespace("killed");
    let mut holder = worker(&["hold", &server.url(), &namespace]);
    let mut probe = server.connection();
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe.keys::<_, Vec<String>>("rtc:l:*").unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the worker never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The worker's lock lives 60 s; this caller's lock_timeout is 2 s: it stops waiting then.
    let info = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&info);
    install(
        &HELD,
        TaggedCache::builder()
            .url(server.url())
            .namespace(&namespace)
            .cache_hook(move |_, _, info: &CacheInfo, _| seen.lock().unwrap().push(info.clone()))
            .build()
            .unwrap(),
    );
    assert_eq!(takes_over_a_held_entry(), VALUE);
    assert_eq!(takes_over_a_held_entry(), VALUE);
    let calls = info.lock().unwrap().clone();
    let [took_over, later] = calls.as_slice() else {
        panic!("the hook ran once per call: {calls:?}");
    };
    assert!(!took_over.hit);
    assert!(
        took_over.lock_waited >= Duration::from_secs(1),
        "it waited for the holder first: {took_over:?}"
    );
    assert!(
        took_over.lock_waited <= Duration::from_secs(5),
        "and not much longer than its lock_timeout: {took_over:?}"
    );
    assert!(
        later.hit && later.lock_full_hit,
        "the value was stored: {later:?}"
    );
}
