//! Writers change data and invalidate its tag while readers call the decorated function: once
//! an invalidation returned, no call that starts afterwards may answer from older data.

use std::future::Future;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use rtc::TaggedCache;
use rtc_tests::staleness::{items, tag, Audit, Data, Reading};
use rtc_tests::statics::{forever, install};
use rtc_tests::workers::{
    read_until_stopped, spawn_readers, write_until_stopped, write_until_stopped_async, Stop,
};
use rtc_tests::RedisServer;

use crate::support::{cache_on, runtime};

static ON_THREADS: OnceLock<TaggedCache> = OnceLock::new();
static ON_TASKS: OnceLock<TaggedCache> = OnceLock::new();
static LOCKED_ON_THREADS: OnceLock<TaggedCache> = OnceLock::new();
static LOCKED_ON_TASKS: OnceLock<TaggedCache> = OnceLock::new();

/// Few items, so that readers and writers meet on the same ones all the time.
const ITEMS: u64 = 4;
const RUN_FOR: Duration = Duration::from_millis(1500);
/// Time between the body's read of the data and its return: the window an invalidation must
/// land in to make the computed value stale.
const BODY: Duration = Duration::from_millis(2);
/// Pause of a writer between two changes.
const WRITE_PAUSE: Duration = Duration::from_millis(3);

#[rtc::cached(tags = [tag(item)], cache = ON_THREADS.get().unwrap(), skip(data))]
fn on_threads(data: &Data, item: u64) -> Reading {
    let reading = data.read(item);
    thread::sleep(BODY);
    reading
}

#[rtc::cached(tags = [tag(item)], cache = ON_TASKS.get().unwrap(), skip(data))]
async fn on_tasks(data: &Data, item: u64) -> Reading {
    let reading = data.read(item);
    tokio::time::sleep(BODY).await;
    reading
}

#[rtc::cached(tags = [tag(item)], lock = true, cache = LOCKED_ON_THREADS.get().unwrap(), skip(data))]
fn locked_on_threads(data: &Data, item: u64) -> Reading {
    let reading = data.read(item);
    thread::sleep(BODY);
    reading
}

#[rtc::cached(tags = [tag(item)], lock = true, cache = LOCKED_ON_TASKS.get().unwrap(), skip(data))]
async fn locked_on_tasks(data: &Data, item: u64) -> Reading {
    let reading = data.read(item);
    tokio::time::sleep(BODY).await;
    reading
}

/// Six reader threads calling `load` and two writer threads, for [`RUN_FOR`].
fn race_on_threads(cache: &TaggedCache, load: fn(&Data, u64) -> Reading) {
    let data = Data::new(ITEMS);
    let audit = Audit::default();
    let stop = Stop::default();
    thread::scope(|scope| {
        let _stop = stop.on_exit();
        for seed in 0..6 {
            let (data, audit, stop) = (&data, &audit, &stop);
            scope.spawn(move || {
                read_until_stopped(items(seed, ITEMS), data, audit, stop, None, load)
            });
        }
        for seed in 100..102 {
            let (data, stop) = (&data, &stop);
            scope.spawn(move || {
                write_until_stopped(items(seed, ITEMS), data, stop, WRITE_PAUSE, cache);
            });
        }
        thread::sleep(RUN_FOR);
        stop.set();
    });
    let stats = cache.stats();
    assert!(
        stats.invalidations > 100 && stats.hits > 100,
        "readers and writers met: {stats:?}"
    );
    audit.assert_all_fresh();
}

/// Sixteen reader tasks calling `load` and two writer tasks on a multi-thread runtime, for
/// [`RUN_FOR`].
fn race_on_tasks<F>(
    cache: &'static TaggedCache,
    load: impl Fn(&'static Data, u64) -> F + Copy + Send + 'static,
) where
    F: Future<Output = Reading> + Send + 'static,
{
    let (data, audit, stop) = (
        forever(Data::new(ITEMS)),
        forever(Audit::default()),
        forever(Stop::default()),
    );
    runtime().block_on(async {
        let runtime = tokio::runtime::Handle::current();
        let mut tasks = spawn_readers(&runtime, 0..16, data, audit, stop, None, load);
        for seed in 100..102 {
            let changes = items(seed, ITEMS);
            tasks.push(tokio::spawn(write_until_stopped_async(
                changes,
                data,
                stop,
                WRITE_PAUSE,
                cache,
            )));
        }
        tokio::time::sleep(RUN_FOR).await;
        stop.set();
        for task in tasks {
            task.await.expect("no task panics");
        }
    });
    let stats = cache.stats();
    assert!(
        stats.invalidations > 100 && stats.hits > 100,
        "readers and writers met: {stats:?}"
    );
    audit.assert_all_fresh();
}

#[test]
fn no_call_on_threads_returns_data_older_than_the_last_invalidation() {
    let server = RedisServer::start();
    let cache = install(&ON_THREADS, cache_on(&server, "race-threads"));
    race_on_threads(cache, on_threads);
}

#[test]
fn no_call_on_tasks_returns_data_older_than_the_last_invalidation() {
    let server = RedisServer::start();
    let cache = install(&ON_TASKS, cache_on(&server, "race-tasks"));
    race_on_tasks(cache, on_tasks);
}

#[test]
fn no_locked_call_on_threads_returns_data_older_than_the_last_invalidation() {
    let server = RedisServer::start();
    let cache = install(&LOCKED_ON_THREADS, cache_on(&server, "race-locked"));
    race_on_threads(cache, locked_on_threads);
}

#[test]
fn no_locked_call_on_tasks_returns_data_older_than_the_last_invalidation() {
    let server = RedisServer::start();
    let cache = install(&LOCKED_ON_TASKS, cache_on(&server, "race-locked-tasks"));
    race_on_tasks(cache, locked_on_tasks);
}
