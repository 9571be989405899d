//! Redis killed or frozen while threads and tasks call decorated functions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use rtc::{Lifetime, TaggedCache};
use rtc_tests::gates::wait_until;
use rtc_tests::staleness::{items, tag, Audit, Data, Reading};
use rtc_tests::statics::{forever, install};
use rtc_tests::workers::{
    between_requests, read_until_stopped, spawn_readers, write_until_stopped,
    write_until_stopped_async, Slowest, Stop,
};
use rtc_tests::RedisServer;

use crate::support::{builder_on, cache_on, runtime};

static KILLED: OnceLock<TaggedCache> = OnceLock::new();
static KILLED_ASYNC: OnceLock<TaggedCache> = OnceLock::new();
static FROZEN: OnceLock<TaggedCache> = OnceLock::new();
static FROZEN_ASYNC: OnceLock<TaggedCache> = OnceLock::new();

/// Caching resumes after an outage within this: the back-off pauses grow to 5 s at most, and
/// the first call after the pause that covers the restart succeeds.
const RESUME_LIMIT: Duration = Duration::from_secs(7);

#[rtc::cached(tags = [tag(item)], cache = KILLED.get().unwrap(), skip(data))]
fn killed_load(data: &Data, item: u64) -> Reading {
    data.read(item)
}

#[rtc::cached(tags = [tag(item)], cache = KILLED_ASYNC.get().unwrap(), skip(data))]
async fn killed_load_async(data: &Data, item: u64) -> Reading {
    data.read(item)
}

/// Hits so far; caching has resumed once they grow again by `by`.
fn hits_grow(cache: &TaggedCache, by: u64) -> impl FnMut() -> bool + '_ {
    let start = cache.stats().hits;
    move || cache.stats().hits >= start + by
}

#[test]
fn calls_keep_answering_while_redis_is_killed_and_caching_resumes_after_the_restart() {
    let mut server = RedisServer::start();
    let cache = install(&KILLED, cache_on(&server, "killed"));
    let data = Data::new(16);
    let audit = Audit::default();
    let stop = Stop::default();
    let (during_outage, resumed_after) = thread::scope(|scope| {
        let _stop = stop.on_exit();
        for seed in 0..3 {
            let (data, audit, stop) = (&data, &audit, &stop);
            scope.spawn(move || {
                let reads = items(seed, data.items());
                read_until_stopped(reads, data, audit, stop, None, killed_load);
            });
        }
        scope.spawn(|| {
            let changes = items(99, data.items());
            write_until_stopped(changes, &data, &stop, Duration::from_millis(10), cache);
        });
        wait_until(Duration::from_secs(10), "warm", hits_grow(cache, 100));
        server.kill();
        let calls = audit.calls();
        thread::sleep(Duration::from_millis(700));
        let during_outage = audit.calls() - calls;
        server.restart();
        let resumed_after = wait_until(RESUME_LIMIT, "caching resumes", hits_grow(cache, 100));
        stop.set();
        (during_outage, resumed_after)
    });
    audit.assert_all_fresh();
    assert!(during_outage > 0, "calls went on while Redis was down");
    assert!(cache.stats().errors > 0, "the outage was noticed");
    eprintln!("caching resumed {resumed_after:?} after the restart");
}

#[test]
fn async_calls_keep_answering_while_redis_is_killed_and_caching_resumes_after_the_restart() {
    let mut server = RedisServer::start();
    let cache = install(&KILLED_ASYNC, cache_on(&server, "killed-async"));
    let data = forever(Data::new(16));
    let audit = forever(Audit::default());
    let stop = forever(Stop::default());
    let runtime = runtime();
    let mut tasks = spawn_readers(
        runtime.handle(),
        0..8,
        data,
        audit,
        stop,
        None,
        killed_load_async,
    );
    let changes = items(99, data.items());
    tasks.push(runtime.spawn(write_until_stopped_async(
        changes,
        data,
        stop,
        Duration::from_millis(10),
        cache,
    )));
    wait_until(Duration::from_secs(10), "warm", hits_grow(cache, 100));
    server.kill();
    let calls = audit.calls();
    thread::sleep(Duration::from_millis(700));
    let during_outage = audit.calls() - calls;
    server.restart();
    let resumed_after = wait_until(RESUME_LIMIT, "caching resumes", hits_grow(cache, 100));
    stop.set();
    runtime.block_on(async {
        for task in tasks {
            task.await.expect("no task panics");
        }
    });
    audit.assert_all_fresh();
    assert!(during_outage > 0, "calls went on while Redis was down");
    eprintln!("async caching resumed {resumed_after:?} after the restart");
}

#[test]
fn async_caching_resumes_within_the_longest_pause_after_a_brief_outage() {
    let mut server = RedisServer::start();
    let cache = cache_on(&server, "brief-outage");
    let stored = forever(AtomicU64::new(0));
    let runtime = runtime();
    for task in 0..8 {
        let cache = cache.clone();
        runtime.spawn(async move {
            loop {
                if cache
                    .set_async(format!("k{task}"), &task, ["t"], Lifetime::Default)
                    .await
                {
                    stored.fetch_add(1, Ordering::Relaxed);
                }
                between_requests().await;
            }
        });
    }
    wait_until(Duration::from_secs(5), "warm", || {
        stored.load(Ordering::Relaxed) > 100
    });
    server.kill();
    thread::sleep(Duration::from_millis(700));
    server.restart();
    let restarted = stored.load(Ordering::Relaxed);
    let resumed_after = wait_until(RESUME_LIMIT, "async caching resumes", || {
        stored.load(Ordering::Relaxed) > restarted + 100
    });
    runtime.shutdown_background();
    eprintln!("async caching resumed {resumed_after:?} after the restart");
}

/// The frozen tests' socket timeout: long beside the body, so that a call that waited for two
/// timeouts cannot pass for one.
const FROZEN_TIMEOUT: Duration = Duration::from_secs(1);
const BODY: Duration = Duration::from_millis(10);
/// Scheduling noise allowed on a busy machine.
const MARGIN: Duration = Duration::from_millis(800);

#[rtc::cached(tags = [tag(item)], cache = FROZEN.get().unwrap(), skip(data))]
fn frozen_load(data: &Data, item: u64) -> Reading {
    thread::sleep(BODY);
    data.read(item)
}

#[rtc::cached(tags = [tag(item)], cache = FROZEN_ASYNC.get().unwrap(), skip(data))]
async fn frozen_load_async(data: &Data, item: u64) -> Reading {
    tokio::time::sleep(BODY).await;
    data.read(item)
}

fn frozen_cache(server: &RedisServer, label: &str) -> TaggedCache {
    builder_on(server, label)
        .response_timeout(FROZEN_TIMEOUT)
        .build()
        .unwrap()
}

#[test]
fn every_call_returns_within_one_socket_timeout_while_redis_is_frozen() {
    let server = RedisServer::start();
    let cache = install(&FROZEN, frozen_cache(&server, "frozen"));
    let data = Data::new(16);
    let audit = Audit::default();
    let stop = Stop::default();
    let slowest = Slowest::default();
    let frozen_calls = thread::scope(|scope| {
        let _stop = stop.on_exit();
        for seed in 0..4 {
            let (data, audit, stop, slowest) = (&data, &audit, &stop, &slowest);
            scope.spawn(move || {
                let reads = items(seed, data.items());
                read_until_stopped(reads, data, audit, stop, Some(slowest), frozen_load);
            });
        }
        wait_until(Duration::from_secs(10), "warm", hits_grow(cache, 100));
        server.freeze();
        let calls = audit.calls();
        thread::sleep(Duration::from_secs(3));
        let frozen_calls = audit.calls() - calls;
        server.thaw();
        let resumed_after = wait_until(RESUME_LIMIT, "caching resumes", hits_grow(cache, 100));
        eprintln!("caching resumed {resumed_after:?} after the thaw");
        stop.set();
        frozen_calls
    });
    audit.assert_all_fresh();
    slowest.assert_at_most(FROZEN_TIMEOUT + BODY + MARGIN);
    assert!(
        frozen_calls > 20,
        "calls went on while Redis was frozen: {frozen_calls}"
    );
    eprintln!("slowest call: {:?}", slowest.get());
}

#[test]
fn every_async_call_returns_within_one_socket_timeout_while_redis_is_frozen() {
    let server = RedisServer::start();
    let cache = install(&FROZEN_ASYNC, frozen_cache(&server, "frozen-async"));
    let data = forever(Data::new(16));
    let audit = forever(Audit::default());
    let stop = forever(Stop::default());
    let slowest = forever(Slowest::default());
    let runtime = runtime();
    let tasks = spawn_readers(
        runtime.handle(),
        0..8,
        data,
        audit,
        stop,
        Some(slowest),
        frozen_load_async,
    );
    wait_until(Duration::from_secs(10), "warm", hits_grow(cache, 100));
    server.freeze();
    let calls = audit.calls();
    thread::sleep(Duration::from_secs(3));
    let frozen_calls = audit.calls() - calls;
    server.thaw();
    let resumed_after = wait_until(RESUME_LIMIT, "caching resumes", hits_grow(cache, 100));
    eprintln!("async caching resumed {resumed_after:?} after the thaw");
    stop.set();
    runtime.block_on(async {
        for task in tasks {
            task.await.expect("no task panics");
        }
    });
    audit.assert_all_fresh();
    slowest.assert_at_most(FROZEN_TIMEOUT + BODY + MARGIN);
    assert!(
        frozen_calls > 20,
        "calls went on while Redis was frozen: {frozen_calls}"
    );
    eprintln!("slowest async call: {:?}", slowest.get());
}
