//! In-band tracking of tag versions (issue 26): an async hit whose tags its connection knows is
//! one `GET`, and each way a known version could go out of date costs a miss, never a stale
//! value. Every test runs against a real `redis-server`.

use std::time::Duration;

use rtc::{Lifetime, MissKind, TaggedCache};
use rtc_tests::{unique_namespace, RedisServer};

fn cache_on(server: &RedisServer, namespace: &str) -> TaggedCache {
    TaggedCache::builder()
        .namespace(namespace)
        .url(server.url())
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn tags(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("tag{i}")).collect()
}

/// What `get_async` found: `Ok(value)`, or why it missed.
async fn read(cache: &TaggedCache, key: &str, tags: &[String]) -> Result<String, MissKind> {
    cache
        .get_async::<String>(key, tags)
        .await
        .map_err(|miss| miss.kind())
}

/// Stores `"value"` under `"k"` with `tags`, then reads it twice: the first read learns the tags'
/// versions, the second is a hit of one `GET`.
async fn stored_and_known(cache: &TaggedCache, tags: &[String]) {
    assert!(
        cache
            .set_async("k", &"value", tags, Lifetime::Default)
            .await
    );
    assert_eq!(read(cache, "k", tags).await.as_deref(), Ok("value"));
    assert_eq!(read(cache, "k", tags).await.as_deref(), Ok("value"));
}

#[test]
fn a_hit_whose_tags_are_known_is_one_get_async_and_blocking() {
    let server = RedisServer::start();
    let cache = cache_on(&server, &unique_namespace("inband"));
    let tags = tags(20);
    runtime().block_on(async {
        assert!(
            cache
                .set_async("k", &"value", &tags, Lifetime::Default)
                .await
        );
        // The first read learns the tags, with its own MGET of the entry and the tags.
        assert_eq!(read(&cache, "k", &tags).await.as_deref(), Ok("value"));
        let (gets, mgets) = (server.command_calls("get"), server.command_calls("mget"));
        for _ in 0..10 {
            assert_eq!(read(&cache, "k", &tags).await.as_deref(), Ok("value"));
        }
        assert_eq!(server.command_calls("get") - gets, 10, "one GET per hit");
        assert_eq!(server.command_calls("mget"), mgets, "no tag read");
    });
    // The blocking API's pooled connection learns the tags for itself, then hits with one GET.
    assert_eq!(cache.get::<String>("k", &tags).as_deref(), Ok("value"));
    let (gets, mgets) = (server.command_calls("get"), server.command_calls("mget"));
    for _ in 0..10 {
        assert_eq!(cache.get::<String>("k", &tags).as_deref(), Ok("value"));
    }
    assert_eq!(server.command_calls("get") - gets, 10, "one GET per hit");
    assert_eq!(server.command_calls("mget"), mgets, "no tag read");
}

/// Three entries, each with a tag of its own and one they share.
fn batch() -> Vec<(String, [String; 2])> {
    (0..3)
        .map(|i| (format!("k{i}"), [format!("own{i}"), "shared".to_owned()]))
        .collect()
}

/// Keys looked up by the server so far (each key an `MGET` reads is one).
fn keys_read(server: &RedisServer) -> u64 {
    let field = |name| {
        server
            .info_field("stats", name)
            .and_then(|value| value.parse::<u64>().ok())
            .expect("INFO stats has the keyspace counters")
    };
    field("keyspace_hits") + field("keyspace_misses")
}

#[test]
fn get_many_whose_tags_are_known_reads_its_entries_alone_async_and_blocking() {
    let server = RedisServer::start();
    let cache = cache_on(&server, &unique_namespace("inband"));
    let batch = batch();
    let values =
        || -> Vec<Result<String, MissKind>> { (0..3).map(|i| Ok(format!("v{i}"))).collect() };
    let kinds = |found: Vec<Result<String, rtc::CacheMiss>>| -> Vec<Result<String, MissKind>> {
        found
            .into_iter()
            .map(|found| found.map_err(|miss| miss.kind()))
            .collect()
    };
    for (i, (key, tags)) in batch.iter().enumerate() {
        assert!(cache.set(key, &format!("v{i}"), tags, Lifetime::Default));
    }
    // The first read on a connection learns the tags; after it, one MGET of the three entries
    // and nothing else: three keys looked up per call.
    let one_mget_of_the_entries = |get_many: &dyn Fn() -> Vec<Result<String, rtc::CacheMiss>>| {
        // The sets learned their tags before creating some; the messages of those creations
        // come after the sets' replies: the first reads learn again.
        assert_eq!(kinds(get_many()), values());
        assert_eq!(kinds(get_many()), values());
        let (keys, mgets) = (keys_read(&server), server.command_calls("mget"));
        for _ in 0..10 {
            assert_eq!(kinds(get_many()), values());
        }
        assert_eq!(
            server.command_calls("mget") - mgets,
            10,
            "one MGET per call"
        );
        assert_eq!(keys_read(&server) - keys, 30, "the entries alone, no tag");
    };
    let runtime = runtime();
    one_mget_of_the_entries(&|| runtime.block_on(cache.get_many_async(batch.clone())));
    one_mget_of_the_entries(&|| cache.get_many(batch.clone()));
}

#[test]
fn get_many_misses_what_another_process_invalidated_on_the_next_call_async_and_blocking() {
    let server = RedisServer::start();
    let (reader, writer) = reader_and_writer(&server);
    let batch = batch();
    let found = |found: Vec<Result<String, rtc::CacheMiss>>| -> Vec<bool> {
        found.iter().map(Result::is_ok).collect()
    };
    let store = |round: usize| {
        for (i, (key, tags)) in batch.iter().enumerate() {
            assert!(reader.set(key, &format!("v{round}.{i}"), tags, Lifetime::Default));
        }
    };
    let runtime = runtime();
    for round in 0..100 {
        store(round);
        let blocking = round % 2 == 0;
        let get_many = |batch: Vec<(String, [String; 2])>| match blocking {
            true => found(reader.get_many(batch)),
            false => found(runtime.block_on(reader.get_many_async(batch))),
        };
        assert_eq!(get_many(batch.clone()), [true; 3]);
        assert_eq!(get_many(batch.clone()), [true; 3]);
        // One entry's own tag, then the tag all three share.
        let own = round % 3;
        assert!(writer.invalidate([batch[own].1[0].as_str()]));
        let mut expected = [true; 3];
        expected[own] = false;
        assert_eq!(
            get_many(batch.clone()),
            expected,
            "round {round}: its own tag"
        );
        assert!(writer.invalidate(["shared"]));
        assert_eq!(
            get_many(batch.clone()),
            [false; 3],
            "round {round}: the shared tag"
        );
    }
}

/// A reader, and another process sharing its namespace: its own cache, its own connections; it
/// invalidates with the blocking API, whose reply comes back before the reader's next read is
/// sent.
fn reader_and_writer(server: &RedisServer) -> (TaggedCache, TaggedCache) {
    let namespace = unique_namespace("inband");
    (cache_on(server, &namespace), cache_on(server, &namespace))
}

#[test]
fn a_tag_invalidated_by_another_process_misses_on_the_next_blocking_read_too() {
    let server = RedisServer::start();
    let (reader, writer) = reader_and_writer(&server);
    let tags = tags(3);
    for round in 0..300 {
        let value = format!("v{round}");
        assert!(reader.set("k", &value, &tags, Lifetime::Default));
        assert_eq!(reader.get::<String>("k", &tags), Ok(value.clone()));
        assert_eq!(reader.get::<String>("k", &tags), Ok(value.clone()));
        assert!(writer.invalidate([tags[round % 3].as_str()]));
        assert_eq!(
            reader.get::<String>("k", &tags).map_err(|miss| miss.kind()),
            Err(MissKind::Absent),
            "round {round}: a hit after the invalidation returned"
        );
    }
}

#[test]
fn a_tag_invalidated_by_another_process_misses_on_the_very_next_read() {
    let server = RedisServer::start();
    let (reader, writer) = reader_and_writer(&server);
    let tags = tags(3);
    let gets = server.command_calls("get");
    runtime().block_on(async {
        for round in 0..300 {
            let value = format!("v{round}");
            assert!(
                reader
                    .set_async("k", &value, &tags, Lifetime::Default)
                    .await
            );
            assert_eq!(read(&reader, "k", &tags).await, Ok(value.clone()));
            assert_eq!(read(&reader, "k", &tags).await, Ok(value.clone()));
            assert!(writer.invalidate([tags[round % 3].as_str()]));
            assert_eq!(
                read(&reader, "k", &tags).await,
                Err(MissKind::Absent),
                "round {round}: a hit after the invalidation returned"
            );
        }
    });
    assert!(
        server.command_calls("get") - gets >= 300,
        "the reads between the invalidations were one GET each"
    );
}

#[test]
fn a_tag_known_to_be_missing_is_forgotten_when_another_process_creates_it() {
    let server = RedisServer::start();
    let (reader, writer) = reader_and_writer(&server);
    runtime().block_on(async {
        for round in 0..100 {
            let tags = [format!("new{round}")];
            let key = format!("k{round}");
            // Twice: the first read learns that the tag does not exist, the second is one `GET`
            // that knows it.
            for _ in 0..2 {
                assert_eq!(read(&reader, &key, &tags).await, Err(MissKind::Absent));
            }
            // Another process writes the entry, creating its tag: the reader hears of it, and
            // takes the value rather than missing on a version it thought missing.
            assert!(writer.set(&key, &"value", &tags, Lifetime::Default));
            assert_eq!(
                read(&reader, &key, &tags).await.as_deref(),
                Ok("value"),
                "round {round}"
            );
        }
    });
}

#[test]
fn a_flushed_database_forgets_every_known_version() {
    let server = RedisServer::start();
    let namespace = unique_namespace("inband");
    let cache = cache_on(&server, &namespace);
    let mut probe = server.connection();
    let tags = tags(2);
    runtime().block_on(async {
        stored_and_known(&cache, &tags).await;
        // The entry's bytes, put back alone after the flush: still stamped with the versions
        // the connection knew, which no tag holds any more.
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut probe).unwrap();
        let saved: Vec<(Vec<u8>, Vec<u8>)> = keys
            .into_iter()
            .map(|key| {
                let bytes: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut probe).unwrap();
                (key, bytes)
            })
            .collect();
        let _: () = redis::cmd("FLUSHALL").query(&mut probe).unwrap();
        assert!(
            saved.iter().any(|(_, bytes)| bytes.len() > 8),
            "the entry was saved"
        );
        for (key, bytes) in &saved {
            // Tags hold 8-byte versions; the entry is longer.
            if bytes.len() > 8 {
                let _: () = redis::cmd("SET")
                    .arg(key)
                    .arg(bytes)
                    .query(&mut probe)
                    .unwrap();
            }
        }
        assert_eq!(
            read(&cache, "k", &tags).await,
            Err(MissKind::Absent),
            "the entry's tags are gone: a miss, whatever the connection knew"
        );
    });
}

#[test]
fn a_tag_that_expires_unannounced_is_not_trusted_past_its_time_to_live() {
    // No active expiry: an expired tag stays in memory, unannounced, until something reads it.
    let server = RedisServer::start_with(&["--enable-debug-command", "local"]);
    let mut probe = server.connection();
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query(&mut probe)
        .unwrap();
    let cache = TaggedCache::builder()
        .namespace(unique_namespace("inband"))
        .url(server.url())
        .lifetime_for_tags(Duration::from_millis(300))
        .build()
        .unwrap();
    let tags = tags(1);
    runtime().block_on(async {
        stored_and_known(&cache, &tags).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            read(&cache, "k", &tags).await,
            Err(MissKind::Absent),
            "the tags expired: the entry's stamp is no one's any more"
        );
    });
}

#[test]
fn a_lost_connection_forgets_what_it_knew() {
    let server = RedisServer::start();
    let namespace = unique_namespace("inband");
    let reader = cache_on(&server, &namespace);
    let tags = tags(2);
    runtime().block_on(async {
        for round in 0..20 {
            assert!(
                reader
                    .set_async("k", &"value", &tags, Lifetime::Default)
                    .await
            );
            assert_eq!(read(&reader, "k", &tags).await.as_deref(), Ok("value"));
            assert_eq!(read(&reader, "k", &tags).await.as_deref(), Ok("value"));
            // The reader's connection goes; the invalidation (by a process that connects after)
            // is announced to nobody.
            assert!(server.kill_clients() >= 1);
            assert!(cache_on(&server, &namespace).invalidate([tags[0].as_str()]));
            // Until the back-off lets the reader try again its reads are unavailable; once it
            // reconnects, the tag it knew is read again.
            let found = loop {
                match read(&reader, "k", &tags).await {
                    Err(MissKind::Unavailable) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    found => break found,
                }
            };
            assert_eq!(found, Err(MissKind::Absent), "round {round}");
        }
    });
}

#[test]
fn a_server_that_refuses_tracking_still_caches_reading_the_tags() {
    let server = RedisServer::start();
    let mut probe = server.connection();
    // Every client may do everything but turn tracking on.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "-client|tracking"])
        .query(&mut probe)
        .unwrap();
    let cache = cache_on(&server, &unique_namespace("inband"));
    let tags = tags(2);
    runtime().block_on(async {
        assert!(
            cache
                .set_async("k", &"value", &tags, Lifetime::Default)
                .await
        );
        let mgets = server.command_calls("mget");
        for _ in 0..5 {
            assert_eq!(read(&cache, "k", &tags).await.as_deref(), Ok("value"));
        }
        assert_eq!(
            server.command_calls("mget") - mgets,
            5,
            "each hit reads its tags"
        );
        assert!(cache.invalidate_async([tags[1].as_str()]).await);
        assert_eq!(read(&cache, "k", &tags).await, Err(MissKind::Absent));
    });
}

/// `EVALSHA`s and `SET`s the server ran so far.
fn writes(server: &RedisServer) -> (u64, u64) {
    (server.command_calls("evalsha"), server.command_calls("set"))
}

/// `set`s of tags the connection does not know send the script: the first marks them, the
/// second learns them on the way; once they are known, every `set` is one plain `SET`.
#[test]
fn a_set_learns_its_tags_and_the_next_are_one_plain_set_async_and_blocking() {
    let server = RedisServer::start();
    let cache = cache_on(&server, &unique_namespace("inband"));
    let tags = tags(3);
    runtime().block_on(async {
        let (scripts, _) = writes(&server);
        for _ in 0..3 {
            assert!(
                cache
                    .set_async("k", &"first", &tags, Lifetime::Default)
                    .await
            );
        }
        assert!(writes(&server).0 > scripts, "the first sets are the script");
        let (scripts, sets) = writes(&server);
        for round in 0..10 {
            let value = format!("v{round}");
            assert!(cache.set_async("k", &value, &tags, Lifetime::Default).await);
            assert_eq!(read(&cache, "k", &tags).await, Ok(value));
        }
        assert_eq!(writes(&server), (scripts, sets + 10), "one SET per set");
    });
    // The blocking API's pooled connection learns the tags for itself: its first set marks
    // them, its second learns them with the script.
    let (scripts, _) = writes(&server);
    for _ in 0..2 {
        assert!(cache.set("k", &"value", &tags, Lifetime::Default));
    }
    assert_eq!(
        writes(&server).0,
        scripts + 2,
        "the first two sets are the script"
    );
    let (scripts, sets) = writes(&server);
    for round in 0..10 {
        let value = format!("v{round}");
        assert!(cache.set("k", &value, &tags, Lifetime::Default));
        assert_eq!(cache.get::<String>("k", &tags), Ok(value));
    }
    assert_eq!(writes(&server), (scripts, sets + 10), "one SET per set");
    // A write that lives less than a tombstone (60 s at least) is the script's.
    assert!(cache.set(
        "k",
        &"short",
        &tags,
        Lifetime::After(Duration::from_secs(5))
    ));
    assert_eq!(writes(&server).0, scripts + 1);
    assert_eq!(cache.get::<String>("k", &tags).as_deref(), Ok("short"));
    // After `SCRIPT FLUSH`, a set that learns loads the script and is written.
    let other = cache_on(&server, &unique_namespace("inband"));
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.connection())
        .unwrap();
    assert!(other.set("k", &"after a flush", &tags, Lifetime::Default));
    assert_eq!(
        other.get::<String>("k", &tags).as_deref(),
        Ok("after a flush")
    );
}

/// The reader knows the tags; the writer (another process) invalidates one; the reader sets a
/// new value at once, its message not read yet: the set stamped with the old version is
/// written again by the script, and the value stands.
#[test]
fn a_set_right_after_another_process_invalidated_a_tag_is_not_lost() {
    let server = RedisServer::start();
    let (reader, writer) = reader_and_writer(&server);
    let tags = tags(3);
    let scripts = writes(&server).0;
    for round in 0..200 {
        let value = format!("v{round}");
        assert!(reader.set("k", &value, &tags, Lifetime::Default));
        assert_eq!(reader.get::<String>("k", &tags), Ok(value));
        assert!(writer.invalidate([tags[round % 3].as_str()]));
        let value = format!("w{round}");
        assert!(reader.set("k", &value, &tags, Lifetime::Default));
        assert_eq!(
            reader.get::<String>("k", &tags),
            Ok(value),
            "round {round}: the set after the invalidation was lost"
        );
    }
    assert!(
        writes(&server).0 - scripts >= 200,
        "each set after an invalidation was written again"
    );
    runtime().block_on(async {
        for round in 0..200 {
            let value = format!("v{round}");
            assert!(
                reader
                    .set_async("k", &value, &tags, Lifetime::Default)
                    .await
            );
            assert_eq!(read(&reader, "k", &tags).await, Ok(value));
            assert!(writer.invalidate([tags[round % 3].as_str()]));
            let value = format!("w{round}");
            assert!(
                reader
                    .set_async("k", &value, &tags, Lifetime::Default)
                    .await
            );
            assert_eq!(
                read(&reader, "k", &tags).await,
                Ok(value),
                "round {round}: the set after the invalidation was lost"
            );
        }
    });
}

/// A computation that read before a delete does not land over a `set` made after the delete
/// with one plain `SET`: that entry has a lineage of its own, which the computation did not read.
#[test]
fn a_computation_from_before_a_delete_does_not_land_over_a_plain_set_after_it() {
    let server = RedisServer::start();
    let (computer, other) = reader_and_writer(&server);
    let tags = tags(2);
    // The other process knows the tags (written and read with another entry: the messages of
    // their creation come after the write's reply), so that its set is one plain SET.
    for _ in 0..3 {
        assert!(other.set("known", &"value", &tags, Lifetime::Default));
        assert_eq!(other.get::<String>("known", &tags).as_deref(), Ok("value"));
    }
    let (started_tx, started) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        // Made here, so that a failed assertion below drops the sender and the computation ends.
        let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
        let (computer, tags) = (&computer, &tags);
        let computing = scope.spawn(move || {
            computer.get_with("k", tags, move || {
                started_tx.send(()).unwrap();
                // Told to finish, or the test failed (the sender dropped): either way, return.
                let _ = finish_rx.recv();
                "computed before the delete".to_owned()
            })
        });
        // The computation read no entry, and computes.
        started.recv().unwrap();
        other.delete("k", tags);
        let (scripts, sets) = writes(&server);
        assert!(other.set("k", &"set after the delete", tags, Lifetime::Default));
        assert_eq!(writes(&server), (scripts, sets + 1), "one plain SET");
        finish.send(()).unwrap();
        assert_eq!(computing.join().unwrap(), "computed before the delete");
    });
    assert_eq!(
        other.get::<String>("k", &tags).as_deref(),
        Ok("set after the delete")
    );
    assert_eq!(
        computer.get::<String>("k", &tags).as_deref(),
        Ok("set after the delete")
    );
}
