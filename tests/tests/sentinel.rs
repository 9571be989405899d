//! rtc through Redis Sentinel: a primary, two replicas and three sentinels, started on loopback.

mod behaviours;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use behaviours::Fixture;
use rtc::{Lifetime, TaggedCache};
use rtc_tests::gates::wait_until;
use rtc_tests::sentinel::{RedisSentinel, SERVICE};
use rtc_tests::staleness::{items, tag, Audit, Data, Reading};
use rtc_tests::statics::{forever, install};
use rtc_tests::tls::Certificates;
use rtc_tests::unique_namespace;
use rtc_tests::workers::{read_until_stopped, spawn_readers, write_until_stopped, Stop};

fn sentinel_cache(deployment: &RedisSentinel) -> TaggedCache {
    sentinel_cache_in(deployment, &unique_namespace("sentinel"))
}

/// A cache on `namespace` (another process's, given another cache's namespace).
fn sentinel_cache_in(deployment: &RedisSentinel, namespace: &str) -> TaggedCache {
    TaggedCache::builder()
        .namespace(namespace)
        .sentinel(deployment.urls(), SERVICE)
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// How many keys of this cache's namespace the node on `port` holds.
fn keys_on(deployment: &RedisSentinel, port: u16, cache: &TaggedCache) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(cache.key_pattern())
        .query(&mut deployment.node(port).connection())
        .unwrap();
    keys.len()
}

/// Writes, reads and invalidates through `cache`, sync and async.
fn round_trip(cache: &TaggedCache) {
    assert!(cache.set("k", &1, ["a"], Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", ["a"]), Ok(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(cache.invalidate_async(["a"]).await);
        assert!(cache.set_async("k", &2, ["a"], Lifetime::Default).await);
        assert_eq!(cache.get_async::<i32>("k", ["a"]).await, Ok(2));
    });
}

#[test]
fn every_behaviour_through_sentinel() {
    let deployment = RedisSentinel::start(1);
    behaviours::run_all(|| Fixture::sentinel(&deployment));
}

#[test]
fn set_get_and_invalidate_go_to_the_primary_the_sentinels_name() {
    let deployment = RedisSentinel::start(1);
    let cache = sentinel_cache(&deployment);
    assert!(cache.set("k", &1, ["a"], Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", ["a"]), Ok(1));
    let primary = deployment.primary_port().unwrap();
    assert!(keys_on(&deployment, primary, &cache) >= 2, "entry and tag");
    assert!(cache.invalidate(["a"]));
    assert!(cache.get::<i32>("k", ["a"]).is_err());
}

#[test]
fn a_hit_on_the_primary_is_one_get_once_its_tags_are_known() {
    let deployment = RedisSentinel::start(1);
    let cache = sentinel_cache(&deployment);
    assert!(cache.set("k", &1, ["a"], Lifetime::Default));
    // The first read learns the tags' versions; the primary then tells this connection of
    // their changes.
    assert_eq!(cache.get::<i32>("k", ["a"]), Ok(1));
    let primary = deployment.node(deployment.primary_port().unwrap());
    let (gets, mgets) = (primary.command_calls("get"), primary.command_calls("mget"));
    for _ in 0..5 {
        assert_eq!(cache.get::<i32>("k", ["a"]), Ok(1));
    }
    assert_eq!(primary.command_calls("get") - gets, 5, "one GET per hit");
    assert_eq!(primary.command_calls("mget"), mgets);
    assert!(sentinel_cache_in(&deployment, cache.namespace()).invalidate(["a"]));
    assert!(
        cache.get::<i32>("k", ["a"]).is_err(),
        "another process's invalidation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_and_invalidate_go_to_the_primary_the_sentinels_name_async() {
    let deployment = RedisSentinel::start(1);
    let cache = sentinel_cache(&deployment);
    assert!(cache.set_async("k", &1, ["a"], Lifetime::Default).await);
    assert_eq!(cache.get_async::<i32>("k", ["a"]).await, Ok(1));
    let primary = deployment.primary_port().unwrap();
    assert!(keys_on(&deployment, primary, &cache) >= 2, "entry and tag");
    assert!(cache.invalidate_async(["a"]).await);
    assert!(cache.get_async::<i32>("k", ["a"]).await.is_err());
}

#[test]
fn sentinels_that_do_not_answer_are_a_miss_not_an_error() {
    let deployment = RedisSentinel::start(0);
    let cache = TaggedCache::builder()
        .namespace(unique_namespace("sentinel"))
        .sentinel(
            [format!("redis://127.0.0.1:{}", rtc_tests::free_port())],
            SERVICE,
        )
        .build()
        .unwrap();
    assert!(!cache.set("k", &1, ["a"], Lifetime::Default));
    assert!(cache.get::<i32>("k", ["a"]).is_err());
    assert!(cache.stats().errors >= 1);
    // A service the sentinels do not monitor is no primary either.
    let unknown = TaggedCache::builder()
        .namespace(unique_namespace("sentinel"))
        .sentinel(deployment.urls(), "no-such-service")
        .build()
        .unwrap();
    assert!(!unknown.set("k", &1, ["a"], Lifetime::Default));
    assert!(unknown.get::<i32>("k", ["a"]).is_err());
}

#[test]
fn a_frozen_sentinel_costs_a_timeout_and_the_next_one_answers() {
    let deployment = RedisSentinel::start(0);
    deployment.freeze_sentinel(0);
    // The first sentinel asked accepts the connection and never answers: the lookup gives up on
    // it after the socket timeout and asks the next, sync and async alike.
    round_trip(&sentinel_cache(&deployment));
    let looked_up_async = sentinel_cache(&deployment);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(
            looked_up_async
                .set_async("k", &1, ["a"], Lifetime::Default)
                .await
        );
        assert_eq!(looked_up_async.get_async::<i32>("k", ["a"]).await, Ok(1));
    });
}

#[test]
fn credentials_reach_the_sentinels_from_their_urls_and_the_primary_from_the_builder() {
    let deployment = RedisSentinel::start(1);
    deployment.add_user("watcher", "sentinel-secret");
    deployment.add_user("app", "primary-secret");
    let with = |sentinel_password: &str, primary_password: &str| {
        let urls = deployment
            .urls()
            .into_iter()
            .map(|url| url.replace("redis://", &format!("redis://watcher:{sentinel_password}@")));
        TaggedCache::builder()
            .namespace(unique_namespace("sentinel-acl"))
            .sentinel(urls, SERVICE)
            .username("app")
            .password(primary_password)
            .build()
            .unwrap()
    };
    let cache = with("sentinel-secret", "primary-secret");
    round_trip(&cache);
    // A wrong password, for the sentinels or for the primary, is a miss.
    for wrong in [
        with("nope", "primary-secret"),
        with("sentinel-secret", "nope"),
    ] {
        assert!(!wrong.set("k", &1, ["a"], Lifetime::Default));
        assert!(wrong.get::<i32>("k", ["a"]).is_err());
        assert!(wrong.stats().errors >= 1);
    }
}

#[test]
fn tls_reaches_the_sentinels_and_the_primary() {
    if !rtc_tests::tls::tls_or_skip() {
        return;
    }
    let certificates = Certificates::generate();
    let deployment = RedisSentinel::start_tls(1, &certificates);
    let cache = TaggedCache::builder()
        .namespace(unique_namespace("sentinel-tls"))
        .sentinel(deployment.urls(), SERVICE)
        .tls_ca_file(certificates.path("ca.crt"))
        .build()
        .unwrap();
    round_trip(&cache);
    let primary = deployment.primary_port().unwrap();
    assert!(keys_on(&deployment, primary, &cache) >= 2, "entry and tag");
    // Without the CA, the certificates are not trusted: a miss.
    let untrusting = TaggedCache::builder()
        .namespace(unique_namespace("sentinel-tls"))
        .sentinel(deployment.urls(), SERVICE)
        .build()
        .unwrap();
    assert!(!untrusting.set("k", &1, ["a"], Lifetime::Default));
}

static LOAD_CACHE: OnceLock<TaggedCache> = OnceLock::new();

/// The "database": the value is the item and the data version it was computed from.
#[rtc::cached(tags = [tag(item)], cache = LOAD_CACHE.get().unwrap(), skip(data))]
fn load(data: &Data, item: u64) -> Reading {
    data.read(item)
}

/// [`load`]'s async twin, on the same cache and entries.
#[rtc::cached(tags = [tag(item)], cache = LOAD_CACHE.get().unwrap(), skip(data))]
async fn load_async(data: &Data, item: u64) -> Reading {
    data.read(item)
}

#[test]
fn a_primary_killed_under_load_costs_hits_not_correctness() {
    let mut deployment = RedisSentinel::start(2);
    let cache = install(&LOAD_CACHE, sentinel_cache(&deployment));
    let data: &'static Data = forever(Data::new(200));
    let audit: &'static Audit = forever(Audit::default());
    let stop: &'static Stop = forever(Stop::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let async_readers = spawn_readers(
        runtime.handle(),
        10..14,
        data,
        audit,
        stop,
        None,
        load_async,
    );
    std::thread::scope(|scope| {
        // Whatever happens below, the readers and the writer stop (a panic would otherwise wait
        // for them forever).
        let _stop = stop.on_exit();
        for seed in 0..4 {
            scope.spawn(move || {
                read_until_stopped(items(seed, data.items()), data, audit, stop, None, load);
            });
        }
        // Invalidates one item after the other, retrying each until it succeeds; the floors
        // move only when the primary acknowledged the invalidation.
        scope.spawn(|| {
            let changes = items(99, data.items());
            write_until_stopped(changes, data, stop, Duration::from_millis(20), cache);
        });
        wait_until(Duration::from_secs(10), "warm", || cache.stats().hits > 500);
        let before = cache.stats();
        let killed = Instant::now();
        let old = deployment.kill_primary();
        let new = deployment.wait_for_new_primary(old);
        let promoted = killed.elapsed();
        let at_promotion = cache.stats();
        wait_until(
            Duration::from_secs(20),
            "caching and invalidating resume after the failover",
            || {
                let now = cache.stats();
                now.hits >= at_promotion.hits + 500
                    && now.invalidations >= at_promotion.invalidations + 10
            },
        );
        let resumed = killed.elapsed();
        let after = cache.stats();
        eprintln!(
            "sentinel failover {old} -> {new}: replica promoted {promoted:?} after the kill, \
             caching resumed (500 more hits, 10 more invalidations) {resumed:?} after it; during the failover: {} hits, \
             {} misses, {} errors, {} invalidations; before: {before:?}; after: {after:?}",
            at_promotion.hits - before.hits,
            at_promotion.misses - before.misses,
            at_promotion.errors - before.errors,
            at_promotion.invalidations - before.invalidations,
        );
        assert!(keys_on(&deployment, new, cache) > 0);
    });
    runtime.block_on(async {
        for reader in async_readers {
            reader.await.expect("no reader panics");
        }
    });
    // Every call returned its item, computed after the last acknowledged invalidation.
    audit.assert_all_fresh();
    assert!(audit.calls() > 1000);
}

#[test]
fn a_ping_reaches_the_primary_and_says_unreachable_when_no_sentinel_names_one() {
    let deployment = RedisSentinel::start(1);
    let cache = sentinel_cache(&deployment);
    let nowhere = TaggedCache::builder()
        .sentinel(
            [format!("redis://127.0.0.1:{}", rtc_tests::free_port())],
            SERVICE,
        )
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let sync = cache.ping();
    let in_async = runtime.block_on(cache.ping_async());
    let error = nowhere.ping().unwrap_err();

    assert!(sync.is_ok(), "{sync:?}");
    assert!(in_async.is_ok(), "{in_async:?}");
    assert_eq!(
        error.kind(),
        rtc::PingErrorKind::Unreachable,
        "{error}: {:?}",
        std::error::Error::source(&error)
    );
}
