//! What only a real Redis can show: round trips, stored bytes, outages.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis::Commands;
use rtc::{Lifetime, MissKind, TaggedCache, NO_TAGS};
use rtc_tests::statics::install;
use rtc_tests::{free_port, unique_namespace, RedisServer};

fn cache_on(server: &RedisServer) -> TaggedCache {
    TaggedCache::builder()
        .namespace(unique_namespace("redis"))
        .url(server.url())
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Commands the server has processed so far.
fn commands_processed(connection: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(connection).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("INFO stats reports total_commands_processed")
}

/// Commands one call sends, measured on the server (the first `INFO` is subtracted).
fn commands_sent_by(connection: &mut redis::Connection, call: impl FnOnce()) -> u64 {
    let before = commands_processed(connection);
    call();
    commands_processed(connection) - before - 1
}

#[test]
fn a_hit_is_one_command_whatever_the_number_of_tags() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    let mut probe = server.connection();
    let tags: Vec<String> = (0..50).map(|i| format!("tag{i}")).collect();
    cache.set("k", &"value", &tags, Lifetime::Default);
    // The first read on a connection learns the tags' versions (and has Redis track them).
    let learning = commands_sent_by(&mut probe, || {
        assert_eq!(cache.get::<String>("k", &tags).as_deref(), Ok("value"))
    });
    assert_eq!(
        learning,
        1 + 1 + 51 + 1,
        "CLIENT CACHING, MGET, a PTTL of each of the 50 tags and the namespace's, the read"
    );
    let hit = commands_sent_by(&mut probe, || {
        assert_eq!(cache.get::<String>("k", &tags).as_deref(), Ok("value"))
    });
    assert_eq!(hit, 1, "one GET of the entry, its tags' versions known");
}

/// How often the server ran `command` (from `INFO commandstats`).
fn calls_of(connection: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(connection)
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// A `set` is one script call; the second `set` of the same tags on a connection also learns
/// them in-band, in the same round trip, and from the third on a `set` is one plain `SET`.
#[test]
fn a_set_is_one_script_call_then_one_set_once_its_tags_are_known() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    let mut probe = server.connection();
    // Commands a script runs count too: with the namespace tag, 3 GETs of tag versions, the GET
    // of the entry (for a delete's lineage) and its SET, plus the EVALSHA itself. The first
    // also creates the 3 tags and loads the script.
    cache.set("warm-up", &0, ["c", "d"], Lifetime::Default);
    let evalsha = calls_of(&mut probe, "evalsha");
    let set = commands_sent_by(&mut probe, || {
        assert!(cache.set("k", &1, ["a", "b"], Lifetime::Default))
    });
    assert_eq!(calls_of(&mut probe, "evalsha") - evalsha, 1);
    assert_eq!(
        set,
        1 + 3 + 2 + 1 + 1,
        "one EVALSHA (creating a and b), nothing else from the client"
    );
    let learning = commands_sent_by(&mut probe, || {
        assert!(cache.set("k", &2, ["a", "b"], Lifetime::Default))
    });
    assert_eq!(calls_of(&mut probe, "evalsha") - evalsha, 2);
    assert_eq!(
        learning,
        1 + 1 + 3 + (1 + 3 + 1 + 1),
        "CLIENT CACHING, MGET and a PTTL of each tag ahead of the same EVALSHA"
    );
    let plain = commands_sent_by(&mut probe, || {
        assert!(cache.set("k", &3, ["a", "b"], Lifetime::Default))
    });
    assert_eq!(plain, 1, "one SET");
    assert_eq!(calls_of(&mut probe, "evalsha") - evalsha, 2);
    assert_eq!(cache.get::<i32>("k", ["a", "b"]), Ok(3));
}

#[test]
fn invalidation_is_one_command_per_tag_whatever_the_number_of_entries() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    let mut probe = server.connection();
    for i in 0..2000 {
        cache.set(format!("k{i}"), &i, ["crowded"], Lifetime::Default);
    }
    let invalidate = commands_sent_by(&mut probe, || assert!(cache.invalidate(["crowded"])));
    assert_eq!(invalidate, 1);
    assert!(cache.get::<i32>("k7", ["crowded"]).is_err());
    let all = commands_sent_by(&mut probe, || assert!(cache.invalidate_all()));
    assert_eq!(all, 1);
}

#[test]
fn keys_are_namespaced_hashes_with_no_user_text() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    cache.set(
        "secret:user:42\n*",
        &1,
        ["tag with spaces"],
        Lifetime::Default,
    );
    let mut probe = server.connection();
    let keys: Vec<String> = probe.keys("*").unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(
            key.starts_with("rtc:e:") || key.starts_with("rtc:t:"),
            "unexpected key {key}"
        );
        assert_eq!(
            key.len(),
            6 + 12 + 1 + 32,
            "kind, namespace id and 128-bit hash: {key}"
        );
    }
}

#[test]
fn corrupt_or_foreign_bytes_under_an_entry_key_are_a_miss() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    cache.set("k", &"good", ["t"], Lifetime::Default);
    let mut probe = server.connection();
    let entry: String = probe
        .keys::<_, Vec<String>>("rtc:e:*")
        .unwrap()
        .pop()
        .expect("the entry key");
    let garbage: [&[u8]; 5] = [
        b"",
        b"\x01",
        b"\x01\x02\x00\x00\x00",
        b"{\"json\": true}",
        &[0xff; 64],
    ];
    for bytes in garbage {
        let _: () = probe.set(&entry, bytes).unwrap();
        assert_eq!(
            cache.get::<String>("k", ["t"]),
            Err(MissKind::Absent.into()),
            "bytes {bytes:?}"
        );
    }
    // A key of the wrong type is a miss too, and a later write repairs it.
    let _: () = probe.del(&entry).unwrap();
    let _: () = probe.rpush(&entry, "list").unwrap();
    assert_eq!(
        cache.get::<String>("k", ["t"]),
        Err(MissKind::Absent.into())
    );
    let _: () = probe.del(&entry).unwrap();
    assert!(cache.set("k", &"good again", ["t"], Lifetime::Default));
    assert_eq!(cache.get::<String>("k", ["t"]).as_deref(), Ok("good again"));
}

#[test]
fn a_corrupt_tag_version_is_a_miss_and_is_repaired_by_the_next_write() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    let mut probe = server.connection();
    cache.set("k", &1, NO_TAGS, Lifetime::Default);
    let tags: Vec<String> = probe.keys("rtc:t:*").unwrap();
    assert_eq!(tags.len(), 1, "only the namespace tag");
    let _: () = probe.set(&tags[0], "not a version").unwrap();
    assert!(cache.get::<i32>("k", NO_TAGS).is_err());
    assert!(cache.set("k", &2, NO_TAGS, Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", NO_TAGS), Ok(2));
}

#[test]
fn a_cache_made_from_the_applications_client_uses_its_database() {
    let server = RedisServer::start();
    let client =
        rtc::redis::Client::open(format!("redis://127.0.0.1:{}/5", server.port())).unwrap();
    let cache = TaggedCache::builder().client(&client).build().unwrap();
    assert!(cache.set("k", &1, ["t"], Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", ["t"]), Ok(1));
    let mut connection = client.get_connection().unwrap();
    let in_db5: usize = redis::cmd("DBSIZE").query(&mut connection).unwrap();
    assert!(in_db5 >= 2, "the entry and its tag are in db 5");
    let in_db0: usize = redis::cmd("DBSIZE")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(in_db0, 0);
}

/// A cache on a port nobody listens on, giving up on a connection after 300 ms.
fn unreachable_cache() -> TaggedCache {
    TaggedCache::builder()
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[test]
fn get_with_on_an_unreachable_server_returns_what_it_computes() {
    let cache = unreachable_cache();
    assert_eq!(cache.get_with("k", ["t"], || 7_u64), 7);
    assert_eq!(
        cache.get_with("k", ["t"], || 8_u64),
        8,
        "nothing was stored"
    );
    let failed: Result<u64, &str> = cache.try_get_with("k", ["t"], || Err("down"));
    assert_eq!(failed, Err("down"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        runtime.block_on(cache.get_with_async("k", ["t"], async { 9_u64 })),
        9
    );
    assert_eq!(
        runtime.block_on(cache.try_get_with_async("k", ["t"], async { Ok::<_, ()>(10_u64) })),
        Ok(10)
    );
}

#[test]
fn an_unreachable_server_is_a_miss_and_later_calls_skip_it() {
    let cache = unreachable_cache();
    assert_eq!(
        cache.get::<i32>("k", ["t"]),
        Err(MissKind::Unavailable.into())
    );
    assert!(!cache.set("k", &1, ["t"], Lifetime::Default));
    assert!(!cache.invalidate(["t"]));
    assert!(!cache.delete("k", ["t"]));
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(
            cache.get::<i32>("k", ["t"]),
            Err(MissKind::Unavailable.into())
        );
    }
    // Backing off, the calls do not even try to connect (a generous bound, not a benchmark).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(cache.stats().errors >= 1);
}

#[test]
fn caching_resumes_by_itself_after_redis_is_killed_and_restarted() {
    let mut server = RedisServer::start();
    let cache = cache_on(&server);
    assert!(cache.set("k", &1, ["t"], Lifetime::Default));
    server.kill();
    assert_eq!(
        cache.get::<i32>("k", ["t"]),
        Err(MissKind::Unavailable.into())
    );
    assert!(!cache.set("k", &2, ["t"], Lifetime::Default));
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.set("k", &3, ["t"], Lifetime::Default) {
        assert!(Instant::now() < deadline, "caching did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(cache.get::<i32>("k", ["t"]), Ok(3));
}

#[test]
fn async_calls_resume_after_a_restart_too() {
    let mut server = RedisServer::start();
    let cache = cache_on(&server);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(cache.set_async("k", &1, ["t"], Lifetime::Default).await);
        server.kill();
        assert_eq!(
            cache.get_async::<i32>("k", ["t"]).await,
            Err(MissKind::Unavailable.into())
        );
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cache.set_async("k", &3, ["t"], Lifetime::Default).await {
            assert!(Instant::now() < deadline, "async caching did not resume");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(cache.get_async::<i32>("k", ["t"]).await, Ok(3));
    });
}

#[test]
fn a_tag_created_by_two_racing_writers_gets_one_version() {
    let server = RedisServer::start();
    let namespace = unique_namespace("race");
    let caches: Vec<TaggedCache> = (0..8)
        .map(|_| {
            TaggedCache::builder()
                .namespace(&namespace)
                .url(server.url())
                .build()
                .unwrap()
        })
        .collect();
    std::thread::scope(|scope| {
        for (i, cache) in caches.iter().enumerate() {
            scope.spawn(move || {
                assert!(cache.set(format!("k{i}"), &i, ["fresh-tag"], Lifetime::Default))
            });
        }
    });
    // Every writer stamped its entry with the one version that won, so all of them hit.
    for (i, cache) in caches.iter().enumerate() {
        assert_eq!(cache.get::<usize>(format!("k{i}"), ["fresh-tag"]), Ok(i));
    }
}

#[test]
fn a_hundred_entries_are_one_mget_whatever_their_tags_and_of_the_entries_alone_once_known() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    let mut probe = server.connection();
    let values: Vec<u32> = (0..100).collect();
    let tags_of = |i: u32| {
        [
            format!("user:{i}"),
            format!("group:{}", i % 7),
            "users".to_owned(),
        ]
    };
    let stored = cache.set_many(
        values.iter().map(|i| (format!("k{i}"), i, tags_of(*i))),
        Lifetime::Default,
    );
    assert_eq!(stored, vec![true; 100]);
    // Every other entry is absent: misses cost nothing more than hits.
    let asked = || (0..200).map(|i| (format!("k{i}"), tags_of(i)));
    let read = || {
        let got = cache.get_many::<u32>(asked());
        assert_eq!(got.len(), 200);
        assert!(got[..100]
            .iter()
            .zip(&values)
            .all(|(got, i)| got == &Ok(*i)));
        assert!(got[100..].iter().all(Result::is_err));
    };
    // The first read on a connection learns its tags' versions, each tag once: 200 own, 7
    // groups, `users` and the namespace's.
    let mget = calls_of(&mut probe, "mget");
    let learning = commands_sent_by(&mut probe, read);
    assert_eq!(
        learning,
        1 + 1 + 209 + 1,
        "CLIENT CACHING, an MGET of the tags, a PTTL of each, the MGET of entries and tags"
    );
    assert_eq!(calls_of(&mut probe, "mget") - mget, 2);
    let mget = calls_of(&mut probe, "mget");
    let sent = commands_sent_by(&mut probe, read);
    assert_eq!(
        sent, 1,
        "one MGET of the 200 entries, their tags' versions known"
    );
    assert_eq!(calls_of(&mut probe, "mget") - mget, 1);
}

#[test]
fn set_many_is_one_script_call() {
    let server = RedisServer::start();
    let cache = cache_on(&server);
    let mut probe = server.connection();
    cache.set("warm-up", &0, ["shared"], Lifetime::Default);
    let evalsha = calls_of(&mut probe, "evalsha");
    let values: Vec<u32> = (0..100).collect();
    let sent = commands_sent_by(&mut probe, || {
        let entries = values
            .iter()
            .map(|i| (format!("k{i}"), i, [format!("own{i}"), "shared".into()]));
        assert_eq!(cache.set_many(entries, Lifetime::Default), vec![true; 100]);
    });
    assert_eq!(calls_of(&mut probe, "evalsha") - evalsha, 1);
    // Inside the script: one GET per tag (the namespace tag, `shared`, 100 own tags), a SET for
    // each of the 100 new tags, a GET (for a delete's lineage) and a SET per entry.
    assert_eq!(
        sent,
        1 + 102 + 100 + 100 + 100,
        "one EVALSHA, nothing else from the client"
    );
    assert_eq!(cache.get::<u32>("k7", ["shared", "own7"]), Ok(7));
}

static REPORTS: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(key = format!("report:{year}"), tags = ["reports"], cache = REPORTS.get().unwrap())]
fn report(year: u32) -> String {
    format!("report of {year}")
}

#[test]
fn get_many_finds_what_a_cached_function_stored_with_one_more_round_trip() {
    let server = RedisServer::start();
    let cache = install(&REPORTS, cache_on(&server));
    let mut probe = server.connection();
    report(2020);
    report(2021);
    cache.set(
        "report:plain",
        &"plain".to_owned(),
        ["reports"],
        Lifetime::Default,
    );
    let asked =
        ["report:2020", "report:plain", "report:2021", "report:2022"].map(|key| (key, "reports"));
    let sent = commands_sent_by(&mut probe, || {
        let got = cache.get_many::<String>(asked);
        let expected =
            ["report of 2020", "plain", "report of 2021"].map(|text| Ok(text.to_owned()));
        assert_eq!(got[..3], expected);
        assert_eq!(got[3], Err(MissKind::Absent.into()));
    });
    assert_eq!(
        sent, 2,
        "one MGET of entries and tags, one of the function's own tag"
    );
    assert!(invalidate_all_report());
    let got = cache.get_many::<String>(asked);
    assert_eq!(
        got[0],
        Err(MissKind::Absent.into()),
        "the function's entries miss after invalidate_all_report"
    );
    assert_eq!(got[1].as_deref(), Ok("plain"));
}

#[test]
fn a_batch_against_an_unreachable_server_misses_everything_with_one_error() {
    let cache = unreachable_cache();
    let got = cache.get_many::<i32>((0..10).map(|i| (format!("k{i}"), "t")));
    assert_eq!(got, vec![Err(MissKind::Unavailable.into()); 10]);
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.errors), (10, 1));

    let cache = unreachable_cache();
    let stored = cache.set_many(
        (0..10).map(|i| (format!("k{i}"), &1, "t")),
        Lifetime::Default,
    );
    assert_eq!(stored, vec![false; 10]);
    let stats = cache.stats();
    assert_eq!((stats.sets, stats.errors), (0, 1));
}
