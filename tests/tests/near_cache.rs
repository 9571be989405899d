//! The near cache against a real server: hits without a round trip, and each guarantee of
//! RELIABILITY.md's "Near cache" section.

use std::time::Duration;

use rtc::{Lifetime, TaggedCache, NO_TAGS};
use rtc_tests::gates::wait_until;
use rtc_tests::{unique_namespace, RedisServer};

const PATIENCE: Duration = Duration::from_secs(10);

fn near_cache(server: &RedisServer, namespace: &str) -> TaggedCache {
    let cache = TaggedCache::builder()
        .url(server.url())
        .namespace(namespace)
        .near_cache(1_000)
        .build()
        .unwrap();
    wait_until(PATIENCE, "near cache tracking", || {
        cache.near_cache_active()
    });
    cache
}

/// Reads until a read is answered near (the echo of a write made just before may end the
/// first fill: Redis announces this process's own writes too); returns the value.
fn answered_near(cache: &TaggedCache, key: &str, tags: &[&str]) -> Option<i32> {
    let mut value = None;
    wait_until(PATIENCE, "a near hit", || {
        let before = cache.stats().near_hits;
        value = cache.get::<i32>(key, tags).ok();
        cache.stats().near_hits > before
    });
    value
}

fn plain_cache(server: &RedisServer, namespace: &str) -> TaggedCache {
    TaggedCache::builder()
        .url(server.url())
        .namespace(namespace)
        .build()
        .unwrap()
}

#[test]
fn a_second_read_is_answered_near() {
    let server = RedisServer::start();
    let cache = near_cache(&server, &unique_namespace("near"));
    assert!(cache.set("k", &1, ["t"], Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", ["t"]), Ok(1));
    assert_eq!(answered_near(&cache, "k", &["t"]), Some(1));
    let stats = cache.stats();
    assert_eq!(stats.misses, 0);
    assert!(
        stats.near_hits >= 1 && stats.hits > stats.near_hits,
        "{stats:?}"
    );
}

#[test]
fn this_process_never_sees_its_own_change_late() {
    let server = RedisServer::start();
    let cache = near_cache(&server, &unique_namespace("near"));
    let warm = |value: i32| {
        assert!(cache.set("k", &value, ["t"], Lifetime::Default));
        assert_eq!(answered_near(&cache, "k", &["t"]), Some(value));
    };
    warm(1);
    assert!(cache.set("k", &2, ["t"], Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", ["t"]), Ok(2), "set");
    warm(3);
    assert!(cache.delete("k", ["t"]));
    assert!(cache.get::<i32>("k", ["t"]).is_err(), "delete");
    warm(4);
    assert!(cache.invalidate(["t"]));
    assert!(cache.get::<i32>("k", ["t"]).is_err(), "invalidate");
    warm(5);
    assert!(cache.invalidate_all());
    assert!(cache.get::<i32>("k", ["t"]).is_err(), "invalidate_all");
}

#[test]
fn another_process_change_stops_the_near_hit() {
    let server = RedisServer::start();
    let namespace = unique_namespace("near");
    let cache = near_cache(&server, &namespace);
    let other = plain_cache(&server, &namespace);
    let warm = |value: i32| {
        assert!(other.set("k", &value, ["t"], Lifetime::Default));
        wait_until(PATIENCE, "the new value", || {
            cache.get::<i32>("k", ["t"]) == Ok(value)
        });
        assert_eq!(answered_near(&cache, "k", &["t"]), Some(value));
    };
    warm(1);
    assert!(other.invalidate(["t"]));
    wait_until(PATIENCE, "a tag invalidated elsewhere", || {
        cache.get::<i32>("k", ["t"]).is_err()
    });
    warm(2);
    assert!(other.invalidate_all());
    wait_until(PATIENCE, "the namespace invalidated elsewhere", || {
        cache.get::<i32>("k", ["t"]).is_err()
    });
    warm(3);
    assert!(other.set("k", &4, ["t"], Lifetime::Default));
    wait_until(PATIENCE, "an overwrite elsewhere", || {
        cache.get::<i32>("k", ["t"]) == Ok(4)
    });
    warm(5);
    assert!(other.delete("k", ["t"]));
    wait_until(PATIENCE, "a delete elsewhere", || {
        cache.get::<i32>("k", ["t"]).is_err()
    });
    warm(6);
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    wait_until(PATIENCE, "FLUSHALL", || {
        cache.get::<i32>("k", ["t"]).is_err()
    });
}

/// What follows `prefix` on the line of the server's `INFO <section>` that starts with it.
fn info_line(server: &RedisServer, section: &str, prefix: &str) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut server.connection())
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|rest| rest.trim().to_owned())
}

/// A number from the `stats` section of the server's `INFO`.
fn info_stat(server: &RedisServer, field: &str) -> u64 {
    rtc_tests::info_stat(&mut server.connection(), field)
}

/// On one server the tracker has Redis announce only the keys its fills read (`OPTIN`): no
/// prefix is broadcast, writes to entries nobody holds near are tracked for nobody, and a fill's
/// keys (its entry and tags) join the server's tracking table; once a message has announced an
/// entry's change, the next fill tracks it again.
#[test]
fn one_server_announces_only_what_the_fills_read() {
    let server = RedisServer::start();
    let namespace = unique_namespace("near-optin");
    let cache = near_cache(&server, &namespace);
    let other = plain_cache(&server, &namespace);
    assert_eq!(
        info_stat(&server, "tracking_total_prefixes"),
        0,
        "no BCAST prefix"
    );
    let before = info_stat(&server, "tracking_total_keys");
    for i in 0..50 {
        assert!(other.set(format!("other:{i}"), &i, ["u"], Lifetime::Default));
    }
    // The writer's data connection learns its set's two tags in-band (`u` and the namespace's),
    // so that its next sets are plain `SET`s; no entry key is tracked.
    assert_eq!(
        info_stat(&server, "tracking_total_keys"),
        before + 2,
        "writes of keys nobody read near track no entry"
    );
    assert!(other.set("k", &1, ["t"], Lifetime::Default));
    assert_eq!(answered_near(&cache, "k", &["t"]), Some(1));
    let filled = info_stat(&server, "tracking_total_keys");
    assert!(
        filled >= before + 3,
        "the entry key, its tag and the namespace's are tracked ({before} keys before the fill, {filled} after)"
    );
    for value in 2..5 {
        assert!(other.set("k", &value, ["t"], Lifetime::Default));
        wait_until(PATIENCE, "the write announced", || {
            cache.get::<i32>("k", ["t"]) == Ok(value)
        });
        assert_eq!(answered_near(&cache, "k", &["t"]), Some(value));
    }
}

/// The async fill reads on the tracking connection too (awaited from the caller's runtime):
/// a decorated async call is answered near, and another process's invalidation ends that.
#[test]
fn async_calls_are_answered_near_and_hear_other_processes() {
    let server = RedisServer::start();
    let namespace = unique_namespace("near-async");
    let cache = near_cache(&server, &namespace);
    let other = plain_cache(&server, &namespace);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let read = || runtime.block_on(cache.get_async::<i32>("k", ["t"]));
    for value in 1..4 {
        assert!(other.set("k", &value, ["t"], Lifetime::Default));
        wait_until(PATIENCE, "the value written elsewhere", || {
            read() == Ok(value)
        });
        wait_until(PATIENCE, "an async near hit", || {
            let before = cache.stats().near_hits;
            read() == Ok(value) && cache.stats().near_hits > before
        });
        assert!(other.invalidate(["t"]));
        wait_until(PATIENCE, "the invalidation announced", || read().is_err());
    }
}

/// Sets an entry for `lifetime` and reads it until past it: answered near at first, and not at
/// all, near or from Redis, once the lifetime has passed.
fn read_until_past_its_lifetime(lifetime: Duration) {
    let server = RedisServer::start();
    let cache = near_cache(&server, &unique_namespace("near"));
    assert!(cache.set("k", &1, NO_TAGS, lifetime));
    // Redis's own expiry is no later than this plus the lifetime, and a millisecond: Redis
    // keeps a key through the millisecond it expires in (and a read in that millisecond may
    // keep it near for what is left of it).
    let set = std::time::Instant::now();
    let expired = lifetime + Duration::from_millis(2);
    assert_eq!(answered_near(&cache, "k", &[]), Some(1));
    while set.elapsed() < expired + Duration::from_millis(100) {
        let asked_at = set.elapsed();
        let answered = cache.get::<i32>("k", NO_TAGS);
        if asked_at > expired {
            assert!(answered.is_err(), "answered {asked_at:?} after the set");
        }
        // Around the deadline, without a pause.
        if asked_at + Duration::from_millis(50) < lifetime {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_near_entry_never_outlives_its_redis_lifetime() {
    read_until_past_its_lifetime(Duration::from_millis(300));
}

/// A lifetime longer than the coarse clock's margin (a second): its hits check the coarse clock
/// first, the precise one in its last second (the deadline itself: the unit test
/// `near::tests::an_entry_living_over_a_second_is_not_answered_past_its_deadline`).
#[test]
fn a_long_lived_near_entry_never_outlives_its_redis_lifetime() {
    read_until_past_its_lifetime(Duration::from_millis(1_500));
}

mod decorated {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;

    use rtc_tests::statics::install;

    use super::*;

    static SHARED: OnceLock<TaggedCache> = OnceLock::new();
    static NAMED: OnceLock<TaggedCache> = OnceLock::new();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static OPTED_OUT_RUNS: AtomicU32 = AtomicU32::new(0);

    #[rtc::cached(tags = [format!("user:{id}")], cache = SHARED.get().unwrap())]
    fn name_of(id: u32) -> String {
        RUNS.fetch_add(1, Ordering::SeqCst);
        format!("user {id}, version {}", RUNS.load(Ordering::SeqCst))
    }

    #[rtc::cached(tags = [format!("user:{id}")], cache = SHARED.get().unwrap())]
    fn shared_profile(id: u32) -> std::sync::Arc<Vec<u32>> {
        std::sync::Arc::new(vec![id; 64])
    }

    #[rtc::cached(cache = SHARED.get().unwrap(), near = false)]
    fn opted_out(id: u32) -> u32 {
        OPTED_OUT_RUNS.fetch_add(1, Ordering::SeqCst);
        id
    }

    // Two functions that share their entries on purpose (`name = ...`), each with tags of its
    // own, both made from the key: each is looked up near before its tags are built, and
    // neither may be answered there with what the other kept under its tags.
    #[rtc::cached(name = "near-shared", tags = [format!("left:{id}")], cache = NAMED.get().unwrap())]
    fn left(id: u32) -> String {
        format!("left {id}")
    }

    #[rtc::cached(name = "near-shared", tags = [format!("right:{id}")], cache = NAMED.get().unwrap())]
    fn right(id: u32) -> String {
        format!("right {id}")
    }

    /// Calls until a call is answered near; returns its value.
    fn answered_near(cache: &TaggedCache, call: impl Fn() -> String) -> String {
        let mut value = String::new();
        wait_until(PATIENCE, "a near hit", || {
            let before = cache.stats().near_hits;
            value = call();
            cache.stats().near_hits > before
        });
        value
    }

    #[test]
    fn decorated_calls_are_answered_near_and_see_their_own_invalidations() {
        let server = RedisServer::start();
        let cache = install(&SHARED, near_cache(&server, &unique_namespace("near-fn")));
        let first = name_of(1);
        assert_eq!(answered_near(cache, || name_of(1)), first);
        let runs = RUNS.load(Ordering::SeqCst);
        assert_eq!(name_of(1), first, "answered near, not computed");
        assert_eq!(RUNS.load(Ordering::SeqCst), runs);

        assert!(invalidate_name_of(1));
        let second = name_of(1);
        assert_ne!(second, first, "invalidate_<fn> is seen at once");
        assert_eq!(answered_near(cache, || name_of(1)), second);
        assert!(invalidate_all_name_of());
        let third = name_of(1);
        assert_ne!(third, second, "invalidate_all_<fn> is seen at once");
        assert_eq!(answered_near(cache, || name_of(1)), third);
        assert!(cache.invalidate(["user:1"]));
        assert_ne!(name_of(1), third, "a tag invalidation is seen at once");

        let near_hits = cache.stats().near_hits;
        for _ in 0..5 {
            assert_eq!(opted_out(7), 7);
        }
        assert_eq!(
            cache.stats().near_hits,
            near_hits,
            "near = false is never answered near"
        );
        assert_eq!(OPTED_OUT_RUNS.load(Ordering::SeqCst), 1);

        // A function returning an `Arc` shares the value its near entry holds: a hit clones
        // the `Arc`, not what it points to.
        let near_hits = cache.stats().near_hits;
        let mut first = shared_profile(3);
        wait_until(PATIENCE, "a shared near hit", || {
            let before = cache.stats().near_hits;
            first = shared_profile(3);
            cache.stats().near_hits > before
        });
        let second = shared_profile(3);
        assert!(cache.stats().near_hits > near_hits + 1);
        assert!(std::sync::Arc::ptr_eq(&first, &second), "one value, shared");
        assert_eq!(*second, vec![3; 64]);
        assert!(cache.invalidate(["user:3"]));
        assert!(
            !std::sync::Arc::ptr_eq(&shared_profile(3), &second),
            "invalidated at once"
        );
    }

    #[test]
    fn functions_sharing_entries_are_not_answered_near_with_each_others_tags() {
        let server = RedisServer::start();
        let cache = install(
            &NAMED,
            near_cache(&server, &unique_namespace("near-shared")),
        );
        assert_eq!(answered_near(cache, || left(5)), "left 5");
        // Same key, other tags: read from Redis, where the entry's tags are not these.
        assert_eq!(right(5), "right 5");
        assert_eq!(answered_near(cache, || right(5)), "right 5");
        assert_eq!(
            left(5),
            "left 5",
            "the entry is right's now, under other tags"
        );
        assert_eq!(answered_near(cache, || left(5)), "left 5");
        // Right's tag drops nothing of left's: left was written last, under its own tag.
        assert!(cache.invalidate(["right:5"]));
        assert_eq!(answered_near(cache, || left(5)), "left 5");
        assert!(cache.invalidate(["left:5"]));
        let before = cache.stats().near_hits;
        assert_eq!(left(5), "left 5");
        assert_eq!(
            cache.stats().near_hits,
            before,
            "invalidated: not answered near"
        );
    }
}

/// Warms `k` near, then lets `lose` break tracking and `other` write `k` while it is broken:
/// once tracking is back, the near cache must not serve the value it held before.
fn no_near_value_survives(lose: impl FnOnce(&mut RedisServer), restarts: bool) {
    let mut server = RedisServer::start();
    let namespace = unique_namespace("near-lost");
    let cache = near_cache(&server, &namespace);
    assert!(cache.set("k", &1, ["t"], Lifetime::Default));
    assert_eq!(answered_near(&cache, "k", &["t"]), Some(1));
    lose(&mut server);
    let other = plain_cache(&server, &namespace);
    if restarts {
        // The restarted server is empty: nothing to read until the other process writes.
        wait_until(PATIENCE, "the other process's write", || {
            other.set("k", &2, ["t"], Lifetime::Default)
        });
    } else {
        assert!(other.set("k", &2, ["t"], Lifetime::Default));
    }
    wait_until(PATIENCE, "tracking back", || cache.near_cache_active());
    // Until the tracker has noticed the loss (a moment after it happened, as with any
    // invalidation message), the value held before may still be served; the first reads after
    // may fail (the data connections were lost too) and miss: that is failing open. Once a read
    // has answered anything else, the value held before must never come back; and if the near
    // entry outlived the loss, no message would ever drop it and the wait would time out.
    let mut moved_on = false;
    let mut reads_of_the_new_value = 0;
    wait_until(
        PATIENCE,
        "the value written while tracking was lost",
        || {
            let read = cache.get::<i32>("k", ["t"]);
            if read == Ok(1) {
                assert!(
                    !moved_on,
                    "a value whose change went unannounced came back after it was dropped"
                );
            } else {
                moved_on = true;
            }
            if read == Ok(2) {
                reads_of_the_new_value += 1;
            }
            reads_of_the_new_value == 20
        },
    );
}

#[test]
fn a_dropped_tracking_connection_drops_the_near_entries() {
    no_near_value_survives(
        |server| {
            assert!(server.kill_clients() >= 1);
        },
        false,
    );
}

/// On one server the fills read on a connection of their own, which redirects its messages to
/// the tracking connection: losing it alone (Redis forgets what it tracked) must drop the near
/// entries too.
#[test]
fn a_dropped_fill_connection_drops_the_near_entries() {
    no_near_value_survives(
        |server| {
            let mut admin = server.connection();
            let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
            let fills: Vec<String> = clients
                .lines()
                .filter(|line| {
                    // `redir=-1`: not tracking; `redir=0`: tracking without a redirection (the
                    // data connections' in-band tracking).
                    line.split(' ').any(|field| {
                        field.starts_with("redir=") && field != "redir=-1" && field != "redir=0"
                    })
                })
                .filter_map(|line| line.split(' ').next()?.strip_prefix("id="))
                .map(str::to_owned)
                .collect();
            assert_eq!(fills.len(), 1, "one fills' connection: {clients}");
            let killed: u64 = redis::cmd("CLIENT")
                .arg(&["KILL", "ID", fills[0].as_str()])
                .query(&mut admin)
                .unwrap();
            assert_eq!(killed, 1);
        },
        false,
    );
}

#[test]
fn a_restarted_server_drops_the_near_entries() {
    no_near_value_survives(|server| server.restart(), true);
}

#[test]
fn a_frozen_server_turns_the_near_cache_off_until_it_answers() {
    let server = RedisServer::start();
    let cache = TaggedCache::builder()
        .url(server.url())
        .namespace(unique_namespace("near-frozen"))
        .response_timeout(Duration::from_millis(200))
        .near_cache(100)
        .build()
        .unwrap();
    wait_until(PATIENCE, "near cache tracking", || {
        cache.near_cache_active()
    });
    assert!(cache.set("k", &1, NO_TAGS, Lifetime::Default));
    assert_eq!(answered_near(&cache, "k", &[]), Some(1));
    server.freeze();
    wait_until(PATIENCE, "the heartbeat to fail", || {
        !cache.near_cache_active()
    });
    // Nothing is served near while tracking is off: the read goes to the frozen server, times
    // out and misses (failing open as without a near cache).
    let near_hits = cache.stats().near_hits;
    assert!(cache.get::<i32>("k", NO_TAGS).is_err());
    assert_eq!(cache.stats().near_hits, near_hits);
    server.thaw();
    wait_until(PATIENCE, "tracking back", || cache.near_cache_active());
    wait_until(PATIENCE, "the value from Redis", || {
        cache.get::<i32>("k", NO_TAGS) == Ok(1)
    });
}

/// Same process, many threads: a writer bumps the value; a reader that saw the bump
/// committed never reads an older value, whatever the near cache held (a fill that lands after
/// the write, the echo of the write arriving late, ...).
#[test]
fn no_reader_in_this_process_sees_a_value_older_than_a_finished_write() {
    use std::sync::atomic::{AtomicI64, Ordering};

    let server = RedisServer::start();
    let cache = near_cache(&server, &unique_namespace("near-race"));
    let committed = AtomicI64::new(0);
    assert!(cache.set("k", &0_i64, ["t"], Lifetime::Default));
    let stop = rtc_tests::workers::Stop::default();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _stop = stop.on_exit();
            for value in 1..=300_i64 {
                assert!(cache.set("k", &value, ["t"], Lifetime::Default));
                committed.store(value, Ordering::SeqCst);
                // Leave the readers time to fill and hit near between writes (bounded: on a
                // loaded machine some writes follow each other at once, which is fine too).
                let near_hits = cache.stats().near_hits;
                let until = std::time::Instant::now() + Duration::from_millis(20);
                while cache.stats().near_hits == near_hits && std::time::Instant::now() < until {
                    std::thread::yield_now();
                }
                if value % 3 == 0 {
                    assert!(cache.invalidate(["t"]));
                    assert!(cache.set("k", &value, ["t"], Lifetime::Default));
                }
            }
        });
        for _ in 0..3 {
            scope.spawn(|| {
                while !stop.is_set() {
                    let floor = committed.load(Ordering::SeqCst);
                    if let Ok(read) = cache.get::<i64>("k", ["t"]) {
                        assert!(read >= floor, "read {read} after {floor} was committed");
                    }
                }
            });
        }
    });
    assert!(cache.stats().near_hits > 0, "{:?}", cache.stats());
}

/// 2,000 values of 100 KB through a `near_cache(100)`: the process keeps about 100 of them.
#[test]
fn the_near_cache_holds_at_most_its_bound() {
    let server = RedisServer::start();
    let cache = near_cache(&server, &unique_namespace("near-bound"));
    let value = "x".repeat(100_000);
    let resident = || -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    };
    let bounded = TaggedCache::builder()
        .url(server.url())
        .namespace(unique_namespace("near-bound"))
        .near_cache(100)
        .build()
        .unwrap();
    wait_until(PATIENCE, "near cache tracking", || {
        bounded.near_cache_active()
    });
    drop(cache);
    let before = resident();
    for n in 0..2_000 {
        let key = n.to_string();
        assert!(bounded.set(&key, &value, NO_TAGS, Lifetime::Default));
        assert_eq!(
            bounded.get::<String>(&key, NO_TAGS).map(|v| v.len()),
            Ok(100_000)
        );
        let _ = bounded.get::<String>(&key, NO_TAGS);
    }
    let grown = resident().saturating_sub(before);
    assert!(bounded.stats().near_hits > 0);
    // Unbounded, 2,000 values would hold 200 MB; 100 of them hold 10 MB.
    assert!(grown < 60_000_000, "resident memory grew by {grown} bytes");
}

fn command_calls(server: &RedisServer, command: &str) -> u64 {
    info_line(server, "commandstats", &format!("cmdstat_{command}:calls=")).map_or(0, |rest| {
        rest.split(',').next().unwrap_or("0").parse().unwrap()
    })
}

/// With every tag's version known from a near entry's read, `set` reads no tag: the write
/// script reads only the entry (for a delete's lineage, `format::lineage`) and writes it; and
/// the entry it writes is read back.
#[test]
fn a_set_whose_tag_versions_are_tracked_reads_no_tag() {
    let server = RedisServer::start();
    let cache = near_cache(&server, &unique_namespace("near-set"));
    assert!(cache.set("a", &1, ["t"], Lifetime::Default));
    assert_eq!(answered_near(&cache, "a", &["t"]), Some(1));
    let calls = |command| command_calls(&server, command);
    let (scripts, gets, sets) = (calls("evalsha"), calls("get"), calls("set"));
    assert!(cache.set("b", &2, ["t"], Lifetime::Default));
    assert_eq!(calls("evalsha"), scripts + 1, "one script");
    assert_eq!(calls("get"), gets + 1, "the entry alone is read");
    assert_eq!(calls("set"), sets + 1, "one SET");
    assert_eq!(cache.get::<i32>("b", ["t"]), Ok(2));
    // An unknown tag: every tag's version (the namespace's too) is read in the script.
    let gets = calls("get");
    assert!(cache.set("c", &3, ["t", "other"], Lifetime::Default));
    assert_eq!(calls("evalsha"), scripts + 2);
    assert_eq!(calls("get"), gets + 4, "three tags and the entry");
    assert_eq!(cache.get::<i32>("c", ["t", "other"]), Ok(3));
}

mod stale {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::Instant;

    use rtc_tests::statics::install;

    use super::*;

    static STALE: OnceLock<TaggedCache> = OnceLock::new();
    static VERSION: AtomicU64 = AtomicU64::new(1);

    #[rtc::cached(cache = STALE.get().unwrap(), tags = ["rates"], lifetime = 1, stale_while_revalidate = 60)]
    fn rate(currency: String) -> u64 {
        let _ = currency;
        VERSION.fetch_add(1, Ordering::SeqCst)
    }

    /// An entry with a stale window lives in Redis past its lifetime; its near copy does not:
    /// past the lifetime the call goes to Redis and is served stale by the protocol (counted),
    /// never by the near cache.
    #[test]
    fn a_near_entry_is_dropped_when_its_stale_window_begins() {
        let server = RedisServer::start();
        let cache = install(&STALE, near_cache(&server, &unique_namespace("near-stale")));
        let written = Instant::now();
        let first = rate("EUR".into());
        wait_until(PATIENCE, "a near hit", || {
            let before = cache.stats().near_hits;
            rate("EUR".into()) == first && cache.stats().near_hits > before
        });
        std::thread::sleep(Duration::from_millis(1_100).saturating_sub(written.elapsed()));
        let before = cache.stats();
        assert_eq!(rate("EUR".into()), first, "served stale at once");
        let after = cache.stats();
        assert_eq!(after.near_hits, before.near_hits, "not by the near cache");
        assert_eq!(after.stale_hits, before.stale_hits + 1);
    }
}
