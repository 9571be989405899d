//! The near cache: hits answered from this process's memory, beside a raw redis-rs `GET` on
//! the same server and beside the `cached` crate's in-memory `#[cached]` (the in-process
//! floor); 64 async tasks against raw async `GET` throughput; and how long a change made by
//! another process takes to stop a near hit (p50 and p99, under load), written to
//! `near_delay.json` beside criterion's figures.

#[allow(dead_code)]
mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use rtc::{Lifetime, TaggedCache};
use support::latency::{concurrent_row, sync_row};
use support::{BenchServer, User, RAW_KEY};

const ID: u64 = 7;
const NAMESPACE: &str = "bench-near";

static NEAR_CACHE: LazyLock<TaggedCache> =
    LazyLock::new(|| near_cache(NAMESPACE, support::url(), 10_000));

/// A cache of `namespace` with a near cache of `max_entries`, once tracking is on.
fn near_cache(namespace: &str, url: &str, max_entries: u64) -> TaggedCache {
    let cache = TaggedCache::builder()
        .namespace(namespace)
        .url(url)
        .near_cache(max_entries)
        .build()
        .expect("an rtc cache with a near cache on the bench server");
    let started = Instant::now();
    while !cache.near_cache_active() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tracking never came up"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    cache
}

#[rtc::cached(tags = [format!("user:{id}")], cache = &*NEAR_CACHE)]
fn rtc_user(id: u64) -> User {
    support::user(id)
}

/// The same, handing out a shared value: a near hit clones the `Arc`, not the `User`.
#[rtc::cached(tags = [format!("user:{id}")], cache = &*NEAR_CACHE)]
fn rtc_shared_user(id: u64) -> std::sync::Arc<User> {
    std::sync::Arc::new(support::user(id))
}

#[rtc::cached(tags = [format!("user:{id}")], cache = &*NEAR_CACHE)]
async fn rtc_user_async(id: u64) -> User {
    support::user(id)
}

#[cached::macros::cached]
fn cached_user_in_memory(id: u64) -> User {
    support::user(id)
}

static MEMORY_CACHE: LazyLock<TaggedCache> = LazyLock::new(|| {
    TaggedCache::builder()
        .in_memory()
        .build()
        .expect("an in-memory rtc cache")
});

#[rtc::cached(tags = [format!("user:{id}")], cache = &*MEMORY_CACHE)]
fn rtc_user_in_memory(id: u64) -> User {
    support::user(id)
}

fn main() {
    let server = BenchServer::acquire();
    support::write_raw_value(&server);
    let mut criterion = support::criterion();
    sync_hit(&mut criterion, &server);
    known_tags_set(&mut criterion, &server);
    async_hit(&mut criterion, &server);
    memory_threads(&mut criterion);
    criterion.final_summary();
    invalidation_delay(&server);
    tracking_table_memory(&server);
}

/// Calls `call` until the near cache answers it.
fn warm(call: impl Fn()) {
    let started = Instant::now();
    loop {
        let before = NEAR_CACHE.stats().near_hits;
        call();
        if NEAR_CACHE.stats().near_hits > before {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never answered near"
        );
    }
}

/// Every hit since `before` was answered near.
fn assert_all_near(before: rtc::CacheStats) {
    let after = NEAR_CACHE.stats();
    assert_eq!(
        after.hits - before.hits,
        after.near_hits - before.near_hits,
        "every timed rtc call was a near hit"
    );
}

/// One thread: decorated and low-level near hits.
fn sync_hit(criterion: &mut Criterion, server: &BenchServer) {
    let mut connection = server.connection();
    let tags = ["user:7", "users"];
    assert!(NEAR_CACHE.set("user:7", &support::user(ID), tags, Lifetime::Default));
    warm(|| {
        black_box(rtc_user(ID));
    });
    warm(|| {
        black_box(rtc_shared_user(ID));
    });
    warm(|| {
        black_box(NEAR_CACHE.get::<User>("user:7", tags).expect("a hit"));
    });
    assert_eq!(cached_user_in_memory(ID), support::user(ID));
    let stats = NEAR_CACHE.stats();

    let mut group = criterion.benchmark_group("near_sync");
    sync_row(&mut group, "near_sync", "raw_get", || {
        support::raw_get(&mut connection)
    });
    sync_row(&mut group, "near_sync", "rtc_near_cached", || {
        rtc_user(black_box(ID))
    });
    sync_row(&mut group, "near_sync", "rtc_near_cached_arc", || {
        rtc_shared_user(black_box(ID))
    });
    sync_row(&mut group, "near_sync", "rtc_near_get", || {
        NEAR_CACHE.get::<User>(black_box("user:7"), tags)
    });
    sync_row(&mut group, "near_sync", "cached_memory", || {
        cached_user_in_memory(black_box(ID))
    });
    group.finish();
    assert_all_near(stats);
}

/// `set` of an entry whose two tags' versions the near cache tracks (one plain `SET`),
/// against a raw `SET` of the same value.
fn known_tags_set(criterion: &mut Criterion, server: &BenchServer) {
    let mut connection = server.connection();
    let tags = ["user:7", "users"];
    let value = support::user(ID);
    assert!(NEAR_CACHE.set("user:7", &value, tags, Lifetime::Default));
    warm(|| {
        black_box(NEAR_CACHE.get::<User>("user:7", tags).expect("a hit"));
    });
    let raw = support::user_json(ID);
    let mut group = criterion.benchmark_group("near_set");
    group.bench_function("raw_set", |bench| {
        bench.iter(|| {
            redis::cmd("SET")
                .arg(RAW_KEY)
                .arg(&raw)
                .exec(&mut connection)
                .expect("SET");
        });
    });
    group.bench_function("rtc_set_known_tags", |bench| {
        bench
            .iter(|| assert!(NEAR_CACHE.set(black_box("user:8"), &value, tags, Lifetime::Default)));
    });
    group.finish();
}

/// 64 tasks at once: near hits against raw async `GET`s on one multiplexed connection.
fn async_hit(criterion: &mut Criterion, server: &BenchServer) {
    let runtime = support::runtime();
    let manager = runtime
        .block_on(redis::aio::ConnectionManager::new(server.client()))
        .expect("a ConnectionManager on the bench server");
    runtime.block_on(async {
        let started = Instant::now();
        loop {
            let before = NEAR_CACHE.stats().near_hits;
            black_box(rtc_user_async(ID).await);
            if NEAR_CACHE.stats().near_hits > before {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never answered near"
            );
        }
    });
    let stats = NEAR_CACHE.stats();

    let mut group = criterion.benchmark_group("near_async_64_tasks");
    group
        .throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat);
    concurrent_row(
        &mut group,
        "near_async_64_tasks",
        "raw_get",
        &runtime,
        move || support::raw_get_async(manager.clone()),
    );
    concurrent_row(
        &mut group,
        "near_async_64_tasks",
        "rtc_near_cached",
        &runtime,
        || async {
            black_box(rtc_user_async(black_box(ID)).await);
        },
    );
    // What any cache that hands out a clone pays at least: the clone and its drop, in the same
    // tasks on the same runtime.
    let user: &'static User = Box::leak(Box::new(support::user(ID)));
    concurrent_row(
        &mut group,
        "near_async_64_tasks",
        "clone_only",
        &runtime,
        move || async move {
            black_box(black_box(user).clone());
        },
    );
    group.finish();
    assert_all_near(stats);
}

/// In-memory decorated hits from 1, 2 and 8 threads at once, each thread on its own key, then
/// all of them on one hot key: criterion's time is wall time per call of all threads together
/// (throughput = 1 / time).
fn memory_threads(criterion: &mut Criterion) {
    for id in 0..8 {
        assert_eq!(rtc_user_in_memory(id), support::user(id));
    }
    let mut group = criterion.benchmark_group("memory_threads");
    group.sampling_mode(SamplingMode::Flat);
    // (threads, each on its own key?, the row's name)
    for (threads, own_keys, name) in [
        (1_u64, true, "threads_1_own_keys"),
        (2, true, "threads_2_own_keys"),
        (8, true, "threads_8_own_keys"),
        (2, false, "threads_2_one_key"),
        (8, false, "threads_8_one_key"),
    ] {
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads);
                let started = Instant::now();
                std::thread::scope(|scope| {
                    for thread in 0..threads {
                        let id = if own_keys { thread } else { 0 };
                        scope.spawn(move || {
                            for _ in 0..per_thread {
                                black_box(rtc_user_in_memory(black_box(id)));
                            }
                        });
                    }
                });
                started.elapsed()
            });
        });
    }
    group.finish();
}

/// How long after another process's `invalidate` returns this process stops answering near:
/// on a quiet process, and while one more thread reads near and another process writes other
/// entries of the namespace at about 5,000 writes a second (so that messages flow all the
/// time). Each round's probe spins on the entry until a read misses.
fn invalidation_delay(server: &BenchServer) {
    let other = TaggedCache::builder()
        .namespace(NAMESPACE)
        .url(server.url())
        .build()
        .expect("a second cache");
    let quiet = delays(&other);
    let busy = AtomicBool::new(true);
    let loaded = std::thread::scope(|scope| {
        let busy = &busy;
        scope.spawn(move || {
            NEAR_CACHE.set("load", &0, ["load"], Lifetime::Default);
            while busy.load(Ordering::Relaxed) {
                black_box(NEAR_CACHE.get::<u32>("load", ["load"]).ok());
            }
        });
        let writer = &other;
        scope.spawn(move || {
            // About 5,000 writes a second to other entries of the namespace, each announced to
            // this process (BCAST announces every write under the prefixes).
            let mut n = 0_u64;
            while busy.load(Ordering::Relaxed) {
                writer.set(
                    format!("churn:{}", n % 1000),
                    &n,
                    ["churn"],
                    Lifetime::Default,
                );
                n += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let loaded = delays(&other);
        busy.store(false, Ordering::Relaxed);
        loaded
    });
    let json = format!("{{\"quiet\": {quiet}, \"loaded\": {loaded}}}\n");
    let path = support::results_dir().join("near_delay.json");
    if let Err(error) = std::fs::write(&path, json) {
        eprintln!("could not write {}: {error}", path.display());
    }
}

/// The delays of [`ROUNDS`] invalidations made through `other`, as JSON percentiles.
fn delays(other: &TaggedCache) -> String {
    const ROUNDS: usize = 500;
    let mut delays = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let tag = format!("probe:{}", round % 10);
        assert!(NEAR_CACHE.set("probe", &round, [tag.as_str()], Lifetime::Default));
        warm(|| {
            black_box(NEAR_CACHE.get::<usize>("probe", [tag.as_str()]).ok());
        });
        assert!(other.invalidate([tag.as_str()]));
        let invalidated = Instant::now();
        // Redis holds no valid entry any more: every read answers the round's value until the
        // near cache has dropped it, and misses from then on. (The near-hit counter cannot
        // tell: the loaded run's reader thread counts near hits of its own meanwhile.) The
        // delay ends when the first read that misses starts: it found no near entry then, and
        // the round trip of its fill is not the invalidation's.
        let dropped = loop {
            let asked = Instant::now();
            if NEAR_CACHE.get::<usize>("probe", [tag.as_str()]) != Ok(round) {
                break asked;
            }
        };
        delays.push(dropped - invalidated);
    }
    delays.sort();
    let at = |quantile: f64| delays[((delays.len() - 1) as f64 * quantile).round() as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), delays[delays.len() - 1]);
    println!("near invalidation delay over {ROUNDS} rounds: p50 {p50:?}, p99 {p99:?}, max {max:?}");
    format!(
        "{{\"rounds\": {ROUNDS}, \"p50_ns\": {}, \"p99_ns\": {}, \"max_ns\": {}}}",
        p50.as_nanos(),
        p99.as_nanos(),
        max.as_nanos()
    )
}

/// The server's memory for what near caches track: `used_memory` growth while a near cache
/// fills 100,000 entries (`OPTIN` on one server: the server keeps every key a fill read in its
/// tracking table until the key changes), beside a connection in Redis's default tracking mode
/// reading 100,000 plain keys (the same table).
fn tracking_table_memory(server: &BenchServer) {
    const KEYS: usize = 100_000;
    let namespace = "bench-near-table";
    let mut admin = server.connection();
    let writer = TaggedCache::builder()
        .namespace(namespace)
        .url(server.url())
        .build()
        .expect("a cache that writes the entries");
    let values: Vec<u64> = (0..KEYS as u64).collect();
    for chunk in values.chunks(1_000) {
        let entries = chunk.iter().map(|n| (format!("table:{n}"), n, ["table"]));
        assert!(writer
            .set_many(entries, Lifetime::Default)
            .into_iter()
            .all(|stored| stored));
    }
    let mut pipe = redis::pipe();
    for n in 0..KEYS {
        pipe.set(format!("bench:table:raw:{n}"), n).ignore();
    }
    let () = pipe.query(&mut admin).expect("the raw keys");

    let near = near_cache(namespace, server.url(), KEYS as u64 * 2);
    let before = used_memory(&mut admin);
    for n in 0..KEYS {
        black_box(near.get::<u64>(format!("table:{n}"), ["table"]).ok());
    }
    let optin = used_memory(&mut admin) - before;
    assert_eq!(near.stats().near_hits, 0, "every read was a fill");

    let mut tracked = redis::Client::open(format!("{}?protocol=resp3", server.url()))
        .and_then(|client| client.get_connection())
        .expect("a RESP3 connection");
    let () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .query(&mut tracked)
        .expect("default-mode tracking");
    let before = used_memory(&mut admin);
    for n in 0..KEYS {
        let _: Option<u64> = redis::cmd("GET")
            .arg(format!("bench:table:raw:{n}"))
            .query(&mut tracked)
            .expect("a raw read");
    }
    let default_mode = used_memory(&mut admin) - before;
    println!(
        "server memory for {KEYS} keys read by a tracking client: rtc's near fills (OPTIN) {optin} bytes, default mode {default_mode} bytes"
    );
    let json = format!(
        "{{\"keys\": {KEYS}, \"optin_bytes\": {optin}, \"default_mode_bytes\": {default_mode}}}\n"
    );
    let path = support::results_dir().join("near_table.json");
    if let Err(error) = std::fs::write(&path, json) {
        eprintln!("could not write {}: {error}", path.display());
    }
}

/// The server's `used_memory`, in bytes.
fn used_memory(connection: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(connection)
        .expect("INFO memory");
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse().ok())
        .expect("used_memory in INFO")
}
