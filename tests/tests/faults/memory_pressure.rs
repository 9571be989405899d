//! A server at `maxmemory`: refusing writes (`noeviction`) or evicting keys, tags included
//! (`allkeys-lru`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use rtc::{Lifetime, TaggedCache};
use rtc_tests::gates::{wait_until, EVENT_LIMIT};
use rtc_tests::staleness::{items, tag, Audit, Data, Reading};
use rtc_tests::statics::install;
use rtc_tests::workers::{read_until_stopped, write_until_stopped, Stop};
use rtc_tests::{warnings, RedisServer};

use crate::support::cache_on;

static FULL: OnceLock<TaggedCache> = OnceLock::new();
static EVICTING: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(tags = [tag(item)], cache = FULL.get().unwrap(), skip(data))]
fn full_load(data: &Data, item: u64) -> Reading {
    data.read(item)
}

/// Puts the server over its memory limit: `maxmemory` set below what it uses. (Filling it with
/// keys leaves it hovering at the limit, where a connection closing frees enough for a write.)
fn fill(server: &RedisServer) {
    let used: u64 = server
        .info_field("memory", "used_memory")
        .and_then(|used| used.parse().ok())
        .expect("INFO memory reports used_memory");
    server.config_set("maxmemory", &(used / 2).to_string());
}

fn empty(server: &RedisServer) {
    server.config_set("maxmemory", "0");
}

/// Readers on threads while `meanwhile` runs on this one.
fn reading(data: &Data, audit: &Audit, meanwhile: impl FnOnce()) {
    let stop = Stop::default();
    thread::scope(|scope| {
        let _stop = stop.on_exit();
        for seed in 0..3 {
            let stop = &stop;
            scope.spawn(move || {
                let reads = items(seed, data.items());
                read_until_stopped(reads, data, audit, stop, None, full_load);
            });
        }
        meanwhile();
    });
}

/// Readers on threads for `duration`.
fn read_for(duration: Duration, data: &Data, audit: &Audit) {
    reading(data, audit, || thread::sleep(duration));
}

/// Readers on threads until `done` holds; the test fails if it does not within [`EVENT_LIMIT`].
fn read_until(what: &str, data: &Data, audit: &Audit, done: impl FnMut() -> bool) {
    reading(data, audit, || {
        wait_until(EVENT_LIMIT, what, done);
    });
}

#[test]
fn a_server_that_refuses_writes_costs_caching_but_never_freshness() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let cache = install(&FULL, cache_on(&server, "noeviction"));
    let data = Data::new(8);
    let audit = Audit::default();
    read_until("cached before the server filled up", &data, &audit, || {
        cache.stats().hits > 0
    });

    fill(&server);
    let (_, logged) = warnings::capture(|| {
        for i in 0..1000 {
            assert!(
                !cache.set(format!("k{i}"), &i, ["t"], Lifetime::Default),
                "a refused write reports false"
            );
        }
    });
    assert!(
        (1..=5).contains(&logged.len()),
        "1000 refused writes, rate-limited warnings: {logged:#?}"
    );
    assert!(
        logged[0].message.contains("OOM"),
        "the warning says why: {}",
        logged[0]
    );
    // Invalidating is a write too: it is refused and says so. The entries it meant to drop stay
    // fresh, so the floor does not move (see RELIABILITY.md).
    assert!(!data.change_once(0, || cache.invalidate([tag(0)])));
    let sets = cache.stats().sets;
    read_for(Duration::from_millis(300), &data, &audit);
    assert_eq!(cache.stats().sets, sets, "nothing was stored while full");

    empty(&server);
    data.change(0, || cache.invalidate([tag(0)]));
    let hits = cache.stats().hits;
    read_until(
        "caching resumed once memory was freed",
        &data,
        &audit,
        || cache.stats().hits > hits,
    );
    audit.assert_all_fresh();
}

/// The items most calls and every change are about.
const HOT: u64 = 50;

/// A value large enough that a few hundred entries fill the server.
type Padded = (u64, u64, String);

#[rtc::cached(tags = [tag(item)], cache = EVICTING.get().unwrap(), skip(data))]
fn evicting_load(data: &Data, item: u64) -> Padded {
    let (item, version) = data.read(item);
    (item, version, "p".repeat(2048))
}

/// Evicted keys by kind, from the server's `evicted` keyspace events.
#[derive(Default)]
struct Evictions {
    tags: AtomicU64,
    entries: AtomicU64,
}

impl Evictions {
    fn watch(&self, server: &RedisServer, stop: &Stop) {
        let mut connection = server.connection();
        let mut events = connection.as_pubsub();
        events.subscribe("__keyevent@0__:evicted").unwrap();
        events
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while !stop.is_set() {
            let Ok(message) = events.get_message() else {
                continue;
            };
            let key: String = message.get_payload().unwrap();
            let counter = if key.starts_with("rtc:t:") {
                &self.tags
            } else {
                &self.entries
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn evicted_tags_and_entries_are_misses_never_stale_values() {
    let server = RedisServer::start_with(&[
        "--maxmemory",
        "2mb",
        "--maxmemory-policy",
        "allkeys-lru",
        "--notify-keyspace-events",
        "Ee",
    ]);
    let cache = install(&EVICTING, cache_on(&server, "allkeys-lru"));
    let data = Data::new(3000);
    let audit = Audit::default();
    let stop = Stop::default();
    let evictions = Evictions::default();
    thread::scope(|scope| {
        let _stop = stop.on_exit();
        scope.spawn(|| evictions.watch(&server, &stop));
        for seed in 0..3 {
            let (data, audit, stop) = (&data, &audit, &stop);
            scope.spawn(move || {
                // Half the calls on a small hot set, so that some entries live long enough to hit.
                let reads = items(seed, data.items()).enumerate().map(|(n, item)| {
                    if n % 2 == 0 {
                        item % HOT
                    } else {
                        item
                    }
                });
                read_until_stopped(reads, data, audit, stop, None, |data, item| {
                    let (got_item, version, _) = evicting_load(data, item);
                    (got_item, version)
                });
            });
        }
        scope.spawn(|| {
            let changes = items(99, HOT);
            write_until_stopped(changes, &data, &stop, Duration::from_millis(2), cache);
        });
        wait_until(Duration::from_secs(20), "tags evicted", || {
            evictions.tags.load(Ordering::Relaxed) >= 20
        });
        stop.set();
    });
    audit.assert_all_fresh();
    assert!(evictions.entries.load(Ordering::Relaxed) > 0);
    assert!(
        cache.stats().hits > 0,
        "entries were served between evictions"
    );
}
