//! Keys rtc reads holding bytes or types it did not write. redis_engine.rs covers `get` over
//! garbage entries and corrupt tag versions; here: decorated calls, repairs, wrong key types for
//! tags, locks and wake-up lists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis::Commands;
use rtc::{Lifetime, MissKind, TaggedCache, NO_TAGS};
use rtc_tests::staleness::tag;
use rtc_tests::statics::install;
use rtc_tests::{warnings, RedisServer};

use crate::support::cache_on;

static CORRUPT: OnceLock<TaggedCache> = OnceLock::new();
static WRONG_LOCK: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(tags = [tag(item)], cache = CORRUPT.get().unwrap(), skip(runs))]
fn corrupt_load(runs: &AtomicU64, item: u64) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    format!("value of {item}")
}

/// The only key matching `pattern`.
fn only_key(probe: &mut redis::Connection, pattern: &str) -> String {
    let keys: Vec<String> = probe.keys(pattern).unwrap();
    assert_eq!(keys.len(), 1, "one key matches {pattern}: {keys:?}");
    keys.into_iter().next().unwrap()
}

/// Replaces whatever is under `key` with a value of another type.
fn retype(probe: &mut redis::Connection, key: &str, kind: &str) {
    let _: () = probe.del(key).unwrap();
    let _: () = match kind {
        "list" => probe.rpush(key, "x").unwrap(),
        "hash" => probe.hset(key, "field", "x").unwrap(),
        "set" => probe.sadd(key, "x").unwrap(),
        "zset" => probe.zadd(key, "x", 1).unwrap(),
        "string" => probe.set(key, "not rtc's").unwrap(),
        other => panic!("unknown kind {other}"),
    };
}

#[test]
fn a_decorated_call_over_damaged_entry_bytes_recomputes_and_repairs_the_entry() {
    let server = RedisServer::start();
    install(&CORRUPT, cache_on(&server, "corrupt"));
    let runs = AtomicU64::new(0);
    let mut probe = server.connection();
    assert_eq!(corrupt_load(&runs, 7), "value of 7");
    let entry = only_key(&mut probe, "rtc:e:*");
    let good: Vec<u8> = probe.get(&entry).unwrap();
    let value_at = good.len() - "\"value of 7\"".len();
    let mut truncated = good.clone();
    truncated.pop();
    let mut other_type = good[..value_at].to_vec();
    other_type.extend_from_slice(b"[1,2,3]");
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        (
            "a header counting 65,535 tags",
            vec![1, 0xff, 0xff, 0xff, 0xff],
        ),
        ("an unknown format", {
            let mut bytes = good.clone();
            bytes[0] = 3;
            bytes
        }),
        ("a fresh stamp over truncated JSON", truncated),
        ("a fresh stamp over a value of another type", other_type),
        ("a fresh stamp with one version byte flipped", {
            let mut bytes = good.clone();
            bytes[6] ^= 0xff;
            bytes
        }),
    ];
    for (what, bytes) in damaged {
        let _: () = probe.set(&entry, bytes).unwrap();
        let before = runs.load(Ordering::SeqCst);
        assert_eq!(corrupt_load(&runs, 7), "value of 7", "{what}");
        assert_eq!(corrupt_load(&runs, 7), "value of 7", "{what}");
        assert_eq!(
            runs.load(Ordering::SeqCst) - before,
            1,
            "{what}: computed once, then the repaired entry hits"
        );
    }
    for kind in ["list", "hash", "set", "zset"] {
        retype(&mut probe, &entry, kind);
        let before = runs.load(Ordering::SeqCst);
        assert_eq!(corrupt_load(&runs, 7), "value of 7", "entry as a {kind}");
        assert_eq!(corrupt_load(&runs, 7), "value of 7", "entry as a {kind}");
        assert_eq!(runs.load(Ordering::SeqCst) - before, 1, "entry as a {kind}");
    }
}

#[test]
fn a_tag_key_of_another_type_turns_its_entries_into_misses_until_it_is_invalidated() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "wrong-tag-type");
    let mut probe = server.connection();
    assert!(cache.set("plain", &0, NO_TAGS, Lifetime::Default));
    let namespace_tag = only_key(&mut probe, "rtc:t:*");
    assert!(cache.set("k", &1, ["odd"], Lifetime::Default));
    let tags: Vec<String> = probe.keys("rtc:t:*").unwrap();
    let odd = tags.into_iter().find(|key| *key != namespace_tag).unwrap();
    let (_, logged) = warnings::capture(|| {
        for kind in ["list", "hash", "set", "zset", "string"] {
            retype(&mut probe, &odd, kind);
            assert_eq!(
                cache.get::<i32>("k", ["odd"]),
                Err(MissKind::Absent.into()),
                "tag as a {kind}"
            );
            let stored = (0..200)
                .filter(|i| cache.set("k", i, ["odd"], Lifetime::Default))
                .count();
            if kind == "string" {
                // Not 8 bytes: not a version. The next write replaces it with one.
                assert_eq!(stored, 200);
                assert_eq!(cache.get::<i32>("k", ["odd"]), Ok(199));
                continue;
            }
            assert_eq!(stored, 0, "tag as a {kind}: writes are refused");
            assert_eq!(
                cache.get::<i32>("plain", NO_TAGS),
                Ok(0),
                "other entries are untouched"
            );
            assert!(cache.invalidate(["odd"]), "invalidating replaces the key");
            assert!(cache.set("k", &2, ["odd"], Lifetime::Default));
            assert_eq!(
                cache.get::<i32>("k", ["odd"]),
                Ok(2),
                "tag as a {kind}: repaired"
            );
        }
    });
    assert!(
        (1..=5).contains(&logged.len()),
        "800 refused writes, rate-limited warnings: {logged:#?}"
    );
    assert!(logged[0].message.contains("WRONGTYPE"), "{}", logged[0]);
    // The namespace's own tag: every entry misses, until invalidate_all.
    retype(&mut probe, &namespace_tag, "hash");
    assert_eq!(
        cache.get::<i32>("plain", NO_TAGS),
        Err(MissKind::Absent.into())
    );
    assert!(!cache.set("plain", &1, NO_TAGS, Lifetime::Default));
    assert!(cache.invalidate_all());
    assert!(cache.set("plain", &1, NO_TAGS, Lifetime::Default));
    assert_eq!(cache.get::<i32>("plain", NO_TAGS), Ok(1));
}

#[rtc::cached(tags = [tag(item)], lock = true, lock_timeout = 5, cache = WRONG_LOCK.get().unwrap(), skip(runs))]
fn wrong_lock_load(runs: &AtomicU64, item: u64) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    format!("value of {item}")
}

#[test]
fn lock_keys_of_another_type_make_the_caller_compute_at_once() {
    let server = RedisServer::start();
    let cache = install(&WRONG_LOCK, cache_on(&server, "wrong-lock-type"));
    let runs = AtomicU64::new(0);
    let mut probe = server.connection();
    assert_eq!(wrong_lock_load(&runs, 1), "value of 1");
    // The holder released the lock and left its token on the wake-up list.
    let wake = only_key(&mut probe, "rtc:w:*");
    let lock = wake.replacen("rtc:w:", "rtc:l:", 1);
    for (lock_kind, wake_kind) in [("hash", "string"), ("list", "zset"), ("string", "hash")] {
        retype(&mut probe, &lock, lock_kind);
        retype(&mut probe, &wake, wake_kind);
        cache.invalidate([tag(1)]);
        let started = Instant::now();
        assert_eq!(wrong_lock_load(&runs, 1), "value of 1");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "lock as a {lock_kind}, wake-up list as a {wake_kind}: no wait for lock_timeout \
             (took {:?})",
            started.elapsed()
        );
    }
}
