//! Connections closed by the server (`CLIENT KILL`) and a server that stalls (`DEBUG SLEEP`)
//! while calls and invalidations run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use rtc::TaggedCache;
use rtc_tests::gates::{wait_until, EVENT_LIMIT};
use rtc_tests::staleness::{items, tag, Audit, Data, Reading};
use rtc_tests::statics::{forever, install};
use rtc_tests::workers::{
    read_until_stopped, spawn_readers, write_until_stopped, write_until_stopped_async, Slowest,
    Stop,
};
use rtc_tests::{unique_namespace, RedisServer};

use crate::support::{builder_on, cache_on, runtime, SOCKET_TIMEOUT};

static CLIENTS: OnceLock<TaggedCache> = OnceLock::new();
static STALLED: OnceLock<TaggedCache> = OnceLock::new();
static LOCKED_A: OnceLock<TaggedCache> = OnceLock::new();
static LOCKED_B: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(tags = [tag(item)], cache = CLIENTS.get().unwrap(), skip(data))]
fn clients_load(data: &Data, item: u64) -> Reading {
    data.read(item)
}

#[rtc::cached(tags = [tag(item)], cache = CLIENTS.get().unwrap(), skip(data))]
async fn clients_load_async(data: &Data, item: u64) -> Reading {
    data.read(item)
}

/// Sync readers and a sync writer on threads, async readers and an async writer on tasks, until
/// `stop` is set.
fn readers_and_writers<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    cache: &'static TaggedCache,
    data: &'static Data,
    audit: &'static Audit,
    stop: &'static Stop,
    runtime: &tokio::runtime::Runtime,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pause = Duration::from_millis(5);
    for seed in 0..3 {
        scope.spawn(move || {
            let reads = items(seed, data.items());
            read_until_stopped(reads, data, audit, stop, None, clients_load);
        });
    }
    scope.spawn(move || {
        let changes = items(98, data.items());
        write_until_stopped(changes, data, stop, pause, cache);
    });
    let mut tasks = spawn_readers(
        runtime.handle(),
        10..16,
        data,
        audit,
        stop,
        None,
        clients_load_async,
    );
    let changes = items(99, data.items());
    tasks.push(runtime.spawn(write_until_stopped_async(changes, data, stop, pause, cache)));
    tasks
}

#[test]
fn connections_killed_by_the_server_never_yield_a_stale_value() {
    let server = RedisServer::start();
    let cache = install(&CLIENTS, cache_on(&server, "client-kill"));
    let (data, audit, stop) = (
        forever(Data::new(8)),
        forever(Audit::default()),
        forever(Stop::default()),
    );
    let runtime = runtime();
    let killed = thread::scope(|scope| {
        let _stop = stop.on_exit();
        let tasks = readers_and_writers(scope, cache, data, audit, stop, &runtime);
        wait_until(Duration::from_secs(10), "warm", || cache.stats().hits > 100);
        let mut killed = 0;
        for _ in 0..30 {
            killed += server.kill_clients();
            thread::sleep(Duration::from_millis(50));
        }
        let hits = cache.stats().hits;
        // The longest back-off pause (5 s) and a margin, as in outage.rs.
        let resumed_after = wait_until(Duration::from_secs(7), "caching resumes", || {
            cache.stats().hits > hits + 100
        });
        eprintln!("caching resumed {resumed_after:?} after the last kill");
        stop.set();
        runtime.block_on(async {
            for task in tasks {
                task.await.expect("no task panics");
            }
        });
        killed
    });
    audit.assert_all_fresh();
    assert!(killed > 0, "the cache's connections were killed");
    assert!(cache.stats().errors > 0, "the kills were noticed");
}

/// Long beside [`SOCKET_TIMEOUT`] (300 ms): calls that give up after one socket timeout answer
/// many times over before the stall ends; a call that waited for the stall would answer after it.
const STALL: Duration = Duration::from_secs(4);

#[rtc::cached(tags = [tag(item)], cache = STALLED.get().unwrap(), skip(data))]
fn stalled_load(data: &Data, item: u64) -> Reading {
    data.read(item)
}

/// While the server sleeps (`DEBUG SLEEP`), every reader keeps answering: the test waits until
/// the stall shows (an error counted), then until each reader has answered twice more, and
/// checks that the server was still asleep then. Nothing is timed: the stall's end is the only
/// clock, and it is 13 socket timeouts away.
#[test]
fn a_stalled_server_costs_one_socket_timeout_and_never_a_stale_value() {
    let server = RedisServer::start_with(&["--enable-debug-command", "local"]);
    let cache = install(&STALLED, cache_on(&server, "debug-sleep"));
    let data = Data::new(8);
    let audit = Audit::default();
    let stop = Stop::default();
    // Calls answered, per reader.
    let answered: [AtomicU64; 4] = Default::default();
    let answered_by = |reader: usize| answered[reader].load(Ordering::SeqCst);
    thread::scope(|scope| {
        let _stop = stop.on_exit();
        for (seed, count) in (0..).zip(&answered) {
            let (data, audit, stop) = (&data, &audit, &stop);
            scope.spawn(move || {
                let reads = items(seed, data.items());
                let load = |data: &Data, item| {
                    let reading = stalled_load(data, item);
                    count.fetch_add(1, Ordering::SeqCst);
                    reading
                };
                read_until_stopped(reads, data, audit, stop, None, load);
            });
        }
        scope.spawn(|| {
            let changes = items(99, data.items());
            write_until_stopped(changes, &data, &stop, Duration::from_millis(5), cache);
        });
        wait_until(Duration::from_secs(10), "warm", || cache.stats().hits > 100);
        // A round proves the point when, while the server sleeps, a call gives up on it and
        // every reader then answers twice more. A reader that waited for the server could
        // never do that; a machine too busy to run the readers during a stall proves nothing
        // either way, so such a round is tried again, up to ROUNDS stalls.
        const ROUNDS: usize = 5;
        let proving = (0..ROUNDS).filter(|_| {
            let errors = cache.stats().errors;
            let stall_over = AtomicBool::new(false);
            thread::scope(|stall| {
                stall.spawn(|| {
                    server.debug_sleep(STALL);
                    stall_over.store(true, Ordering::SeqCst);
                });
                let over = || stall_over.load(Ordering::SeqCst);
                wait_until(EVENT_LIMIT, "a call gave up, or the stall ended", || {
                    cache.stats().errors > errors || over()
                });
                if over() {
                    return false;
                }
                let before: Vec<u64> = (0..answered.len()).map(answered_by).collect();
                let answered_twice =
                    || (0..answered.len()).all(|reader| answered_by(reader) >= before[reader] + 2);
                wait_until(EVENT_LIMIT, "every reader answered twice more", || {
                    answered_twice() || over()
                });
                answered_twice() && !over()
            })
        });
        assert!(
            proving.take(2).count() == 2,
            "in {ROUNDS} stalls, fewer than two saw every reader answer twice while the server slept"
        );
        let hits = cache.stats().hits;
        wait_until(Duration::from_secs(10), "caching resumes", || {
            cache.stats().hits > hits + 100
        });
        stop.set();
    });
    audit.assert_all_fresh();
}

/// Both functions compute the same entry (same key, same tags) through two caches, so they
/// contend on the entry's Redis lock as two processes would: one holds it, the other waits on
/// the wake-up list.
#[rtc::cached(key = format!("locked:{item}"), tags = [tag(item)], lock = true, lock_timeout = 2, cache = LOCKED_A.get().unwrap())]
fn locked_a(item: u64) -> Reading {
    thread::sleep(Duration::from_millis(20));
    (item, 1)
}

#[rtc::cached(key = format!("locked:{item}"), tags = [tag(item)], lock = true, lock_timeout = 2, cache = LOCKED_B.get().unwrap())]
fn locked_b(item: u64) -> Reading {
    thread::sleep(Duration::from_millis(20));
    (item, 1)
}

/// Scheduling noise allowed on a busy machine.
const MARGIN: Duration = Duration::from_millis(600);

#[test]
fn lock_holders_and_waiters_get_through_killed_connections_and_stalls() {
    let server = RedisServer::start_with(&["--enable-debug-command", "local"]);
    let namespace = unique_namespace("locked-faults");
    let shared = |label| {
        builder_on(&server, label)
            .namespace(&namespace)
            .build()
            .unwrap()
    };
    let cache = install(&LOCKED_A, shared("a"));
    install(&LOCKED_B, shared("b"));
    // The data never changes: every answer must be version 1 of its own item.
    let data = Data::new(3);
    let audit = Audit::default();
    let stop = Stop::default();
    let slowest = Slowest::default();
    thread::scope(|scope| {
        let _stop = stop.on_exit();
        for seed in 0..6 {
            let (data, audit, stop, slowest) = (&data, &audit, &stop, &slowest);
            let load = if seed % 2 == 0 { locked_a } else { locked_b };
            scope.spawn(move || {
                let reads = items(seed, data.items());
                read_until_stopped(reads, data, audit, stop, Some(slowest), |_, item| {
                    load(item)
                });
            });
        }
        // Cold entries again and again, so that callers keep meeting held locks.
        scope.spawn(|| {
            for item in items(99, 3) {
                if stop.is_set() {
                    break;
                }
                cache.invalidate([tag(item)]);
                thread::sleep(Duration::from_millis(30));
            }
        });
        thread::sleep(Duration::from_millis(300));
        for _ in 0..3 {
            server.kill_clients();
            thread::sleep(Duration::from_millis(200));
            server.debug_sleep(Duration::from_millis(500));
            thread::sleep(Duration::from_millis(200));
        }
        stop.set();
    });
    audit.assert_all_fresh();
    assert!(
        cache.stats().lock_waits > 0,
        "callers waited for each other"
    );
    // A waiter gives up after its lock_timeout (2 s) and computes by itself; a round trip to a
    // stalled server may cost a socket timeout before and after.
    slowest.assert_at_most(Duration::from_secs(2) + 3 * SOCKET_TIMEOUT + MARGIN);
}
