//! rtc's low-level API beside raw redis-rs on the same server: `get` hit (with 2 tags, and with 1
//! against 20), `set`, 100 hits in one
//! `get_many` against 100 `get`s and one raw `MGET`, and `invalidate` of a tag carried by one
//! entry against one carried by 100,000.

#[allow(dead_code)]
mod support;

use std::time::Instant;

use criterion::Criterion;
use rtc::{Lifetime, TaggedCache};
use support::latency::sync_row;
use support::{BenchServer, User};

/// Entries carrying the crowded tag of the invalidation bench.
const CROWD: u64 = 100_000;
/// Entries read at once in the batch bench.
const BATCH: u64 = 100;
const TAGS: [&str; 2] = ["tag1", "tag2"];

fn main() {
    let server = BenchServer::acquire();
    let cache = TaggedCache::builder()
        .namespace("bench-low-level")
        .url(server.url())
        .build()
        .expect("an rtc cache on the bench server");
    let mut criterion = support::criterion();
    get_hit(&mut criterion, &server, &cache);
    get_tags(&mut criterion, &cache);
    mget_keys(&mut criterion, &server);
    set(&mut criterion, &server, &cache);
    get_many(&mut criterion, &server, &cache);
    invalidate(&mut criterion, &cache);
    criterion.final_summary();
}

/// A hit with two tags: one `MGET` of the entry, both tags and the namespace tag.
fn get_hit(criterion: &mut Criterion, server: &BenchServer, cache: &TaggedCache) {
    let mut connection = server.connection();
    let value = support::user_json(1);
    redis::cmd("SET")
        .arg("bench:raw:user:1")
        .arg(&value)
        .exec(&mut connection)
        .expect("SET");
    assert!(cache.set("user:1", &support::user(1), TAGS, Lifetime::Default));
    assert_eq!(cache.get::<User>("user:1", TAGS), Ok(support::user(1)));

    let mut group = criterion.benchmark_group("get_hit");
    sync_row(&mut group, "get_hit", "raw_get", || {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg("bench:raw:user:1")
            .query(&mut connection)
            .expect("GET");
        bytes
    });
    sync_row(&mut group, "get_hit", "rtc_get", || {
        cache.get::<User>("user:1", TAGS).expect("a hit")
    });
    group.finish();
}

/// A hit with 20 tags beside one with 1: each tag adds a key to the `MGET` and a version to check.
fn get_tags(criterion: &mut Criterion, cache: &TaggedCache) {
    let one = ["tag1"];
    let twenty: Vec<String> = (1..=20).map(|tag| format!("tag{tag}")).collect();
    assert!(cache.set("user:4", &support::user(4), one, Lifetime::Default));
    assert!(cache.set("user:5", &support::user(5), &twenty, Lifetime::Default));

    let mut group = criterion.benchmark_group("get_tags");
    sync_row(&mut group, "get_tags", "rtc_get_1_tag", || {
        cache.get::<User>("user:4", one).expect("a hit")
    });
    sync_row(&mut group, "get_tags", "rtc_get_20_tags", || {
        cache.get::<User>("user:5", &twenty).expect("a hit")
    });
    group.finish();
}

/// Raw `MGET`s of as many keys as a 1-tag and a 20-tag `get` read (the entry, its tags and the
/// namespace's tag), with nothing of rtc around them: what the extra keys cost redis-rs and the
/// server alone.
fn mget_keys(criterion: &mut Criterion, server: &BenchServer) {
    support::write_raw_value(server);
    let versions = support::write_version_keys(server, 21);
    let keys = |tags: usize| -> Vec<&str> {
        std::iter::once(support::RAW_KEY)
            .chain(versions[..=tags].iter().map(String::as_str))
            .collect()
    };
    let (three, twenty_two) = (keys(1), keys(20));
    let mut connection = server.connection();
    let mut group = criterion.benchmark_group("mget_keys");
    for (bench, keys) in [
        ("raw_mget_3_keys", &three),
        ("raw_mget_22_keys", &twenty_two),
    ] {
        sync_row(&mut group, "mget_keys", bench, || {
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(keys)
                .query(&mut connection)
                .expect("MGET");
            values
        });
    }
    group.finish();
}

/// A write whose two tags already have versions: one `EVALSHA` against one `SET`.
fn set(criterion: &mut Criterion, server: &BenchServer, cache: &TaggedCache) {
    let mut connection = server.connection();
    let value = support::user_json(2);
    let user = support::user(2);
    assert!(cache.set("user:2", &user, TAGS, Lifetime::Default));

    let mut group = criterion.benchmark_group("set");
    group.bench_function("raw_set", |bench| {
        bench.iter(|| {
            redis::cmd("SET")
                .arg("bench:raw:user:2")
                .arg(&value)
                .exec(&mut connection)
                .expect("SET");
        });
    });
    group.bench_function("rtc_set", |bench| {
        bench.iter(|| assert!(cache.set("user:2", &user, TAGS, Lifetime::Default)));
    });
    group.finish();
}

/// [`BATCH`] hits with two tags each (one of them their own): one `get_many` (a single `MGET`
/// of the entries and their distinct tags) against a `get` per entry and one raw `MGET`.
fn get_many(criterion: &mut Criterion, server: &BenchServer, cache: &TaggedCache) {
    let mut connection = server.connection();
    let raw_keys: Vec<String> = (0..BATCH)
        .map(|id| format!("bench:raw:batch:{id}"))
        .collect();
    for (id, key) in (0..BATCH).zip(&raw_keys) {
        redis::cmd("SET")
            .arg(key)
            .arg(support::user_json(id))
            .exec(&mut connection)
            .expect("SET");
    }
    let users: Vec<User> = (0..BATCH).map(support::user).collect();
    let entries: Vec<(String, [String; 2])> = (0..BATCH)
        .map(|id| {
            let tags = [format!("user:{id}"), "users".to_owned()];
            (format!("batch:{id}"), tags)
        })
        .collect();
    let stored = cache.set_many(
        entries
            .iter()
            .zip(&users)
            .map(|((key, tags), user)| (key, user, tags)),
        Lifetime::Default,
    );
    assert!(stored.iter().all(|stored| *stored));
    let read = || cache.get_many::<User>(entries.iter().map(|(key, tags)| (key, tags)));
    assert!(read().into_iter().eq(users.iter().cloned().map(Ok)));

    let mut group = criterion.benchmark_group("get_many_100");
    sync_row(&mut group, "get_many_100", "raw_mget", || {
        let values: Vec<Vec<u8>> = redis::cmd("MGET")
            .arg(&raw_keys)
            .query(&mut connection)
            .expect("MGET");
        values
    });
    sync_row(&mut group, "get_many_100", "rtc_get_many", read);
    sync_row(&mut group, "get_many_100", "rtc_get_each", || {
        let values: Vec<User> = entries
            .iter()
            .map(|(key, tags)| cache.get::<User>(key, tags).expect("a hit"))
            .collect();
        values
    });
    group.finish();
}

/// Invalidation touches only the tag's key, whatever the number of entries that carry it.
fn invalidate(criterion: &mut Criterion, cache: &TaggedCache) {
    assert!(cache.set(
        "lonely",
        &support::user(3),
        ["lonely-tag"],
        Lifetime::Default
    ));
    fill_crowd(cache);
    assert!(cache.get::<User>("crowd:0", ["crowded-tag"]).is_ok());

    let mut group = criterion.benchmark_group("invalidate");
    group.bench_function("tag_of_1_entry", |bench| {
        bench.iter(|| assert!(cache.invalidate(["lonely-tag"])));
    });
    group.bench_function("tag_of_100k_entries", |bench| {
        bench.iter(|| assert!(cache.invalidate(["crowded-tag"])));
    });
    group.finish();
    assert!(cache.get::<User>("crowd:0", ["crowded-tag"]).is_err());
    assert!(cache.get::<User>("lonely", ["lonely-tag"]).is_err());
}

/// Writes [`CROWD`] entries carrying `crowded-tag` through the public API, 64 writes in flight.
fn fill_crowd(cache: &TaggedCache) {
    let started = Instant::now();
    let runtime = support::runtime();
    let writer = cache.clone();
    let elapsed = support::concurrently(&runtime, CROWD, move || {
        let cache = writer.clone();
        async move {
            // A shared counter gives every write its own key.
            let id = next_crowd_id();
            assert!(
                cache
                    .set_async(
                        format!("crowd:{id}"),
                        &support::user(id),
                        ["crowded-tag"],
                        Lifetime::Default
                    )
                    .await
            );
        }
    });
    println!(
        "invalidate: wrote {CROWD} entries carrying one tag in {:.1} s ({:.1} s with setup)",
        elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

fn next_crowd_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
