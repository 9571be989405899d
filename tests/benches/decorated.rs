//! Hits of decorated functions: rtc's `#[cached]` beside raw redis-rs and beside the `cached`
//! crate's macros on the same function, sync, async with 64 tasks in flight, and in memory. The
//! sync group also times the raw `GET` followed by the `User`'s JSON decode, which every typed
//! cache adds to the `GET` and rtc's own work does not include.

#[allow(dead_code)]
mod support;

use std::hint::black_box;
use std::sync::LazyLock;

use criterion::{Criterion, SamplingMode, Throughput};
use rtc::TaggedCache;
use support::latency::{concurrent_row, sync_row};
use support::peer::{cached_user, cached_user_async};
use support::{BenchServer, User};

/// The id every hit asks for; the entry is written before the timing starts.
const ID: u64 = 7;

static REDIS_CACHE: LazyLock<TaggedCache> = LazyLock::new(|| {
    TaggedCache::builder()
        .namespace("bench-decorated")
        .url(support::url())
        .build()
        .expect("an rtc cache on the bench server")
});

static MEMORY_CACHE: LazyLock<TaggedCache> = LazyLock::new(|| {
    TaggedCache::builder()
        .in_memory()
        .build()
        .expect("an in-memory rtc cache")
});

#[rtc::cached(tags = [format!("user:{id}")], cache = &*REDIS_CACHE)]
fn rtc_user(id: u64) -> User {
    support::user(id)
}

#[rtc::cached(tags = [format!("user:{id}")], cache = &*REDIS_CACHE)]
async fn rtc_user_async(id: u64) -> User {
    support::user(id)
}

#[rtc::cached(tags = [format!("user:{id}")], cache = &*MEMORY_CACHE)]
fn rtc_user_in_memory(id: u64) -> User {
    support::user(id)
}

#[cached::macros::cached]
fn cached_user_in_memory(id: u64) -> User {
    support::user(id)
}

fn main() {
    let server = BenchServer::acquire();
    let mut criterion = support::criterion();
    sync_hit(&mut criterion, &server);
    async_hit(&mut criterion, &server);
    in_memory_hit(&mut criterion);
    criterion.final_summary();
}

/// A sync decorated function with one dynamic tag, hit, on one thread.
fn sync_hit(criterion: &mut Criterion, server: &BenchServer) {
    support::write_raw_value(server);
    let mut connection = server.connection();
    assert_eq!(rtc_user(ID), support::user(ID));
    assert_eq!(cached_user(ID), Ok(support::user(ID)));
    let misses = REDIS_CACHE.stats().misses;

    let mut group = criterion.benchmark_group("decorated_sync");
    sync_row(&mut group, "decorated_sync", "raw_get", || {
        support::raw_get(&mut connection)
    });
    sync_row(&mut group, "decorated_sync", "raw_get_decoded", || {
        serde_json::from_slice::<User>(&support::raw_get(&mut connection)).expect("a User")
    });
    sync_row(&mut group, "decorated_sync", "rtc_cached", || {
        rtc_user(black_box(ID))
    });
    sync_row(&mut group, "decorated_sync", "cached_redis", || {
        cached_user(black_box(ID)).expect("a hit")
    });
    group.finish();
    assert_eq!(
        REDIS_CACHE.stats().misses,
        misses,
        "every timed rtc call was a hit"
    );
}

/// Hits from 64 tasks at once on one multiplexed connection, as throughput.
fn async_hit(criterion: &mut Criterion, server: &BenchServer) {
    support::write_raw_value(server);
    // A decorated hit reads its entry, its tag, its function's tag and the namespace's tag.
    let versions: std::sync::Arc<[String]> = support::write_version_keys(server, 3).into();
    let runtime = support::runtime();
    let manager = runtime
        .block_on(redis::aio::ConnectionManager::new(server.client()))
        .expect("a ConnectionManager on the bench server");
    runtime.block_on(async {
        assert_eq!(rtc_user_async(ID).await, support::user(ID));
        assert_eq!(cached_user_async(ID).await, Ok(support::user(ID)));
    });
    let misses = REDIS_CACHE.stats().misses;

    let mut group = criterion.benchmark_group("async_64_tasks");
    group
        .throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat);
    let mget_manager = manager.clone();
    concurrent_row(
        &mut group,
        "async_64_tasks",
        "raw_get",
        &runtime,
        move || support::raw_get_async(manager.clone()),
    );
    concurrent_row(
        &mut group,
        "async_64_tasks",
        "raw_mget_4_keys",
        &runtime,
        move || support::raw_mget_async(mget_manager.clone(), versions.clone()),
    );
    concurrent_row(
        &mut group,
        "async_64_tasks",
        "rtc_cached",
        &runtime,
        || async {
            black_box(rtc_user_async(black_box(ID)).await);
        },
    );
    concurrent_row(
        &mut group,
        "async_64_tasks",
        "cached_redis",
        &runtime,
        || async {
            black_box(cached_user_async(black_box(ID)).await.expect("a hit"));
        },
    );
    group.finish();
    assert_eq!(
        REDIS_CACHE.stats().misses,
        misses,
        "every timed rtc call was a hit"
    );
}

/// The same decorated function on rtc's in-memory backend and on `cached`'s default store.
fn in_memory_hit(criterion: &mut Criterion) {
    assert_eq!(rtc_user_in_memory(ID), support::user(ID));
    assert_eq!(cached_user_in_memory(ID), support::user(ID));
    let misses = MEMORY_CACHE.stats().misses;

    let mut group = criterion.benchmark_group("in_memory");
    sync_row(&mut group, "in_memory", "cached_memory", || {
        cached_user_in_memory(black_box(ID))
    });
    sync_row(&mut group, "in_memory", "rtc_cached", || {
        rtc_user_in_memory(black_box(ID))
    });
    group.finish();
    assert_eq!(
        MEMORY_CACHE.stats().misses,
        misses,
        "every timed rtc call was a hit"
    );
}
