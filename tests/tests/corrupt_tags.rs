//! A tag key holding bytes that are not a version is repaired by the next write, on every write
//! path: the standalone `set` script, the tag creation decorated calls make before computing, and
//! every `set` on a cluster (which creates tags before writing the entry).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use redis::Commands;
use rtc::{Lifetime, TaggedCache, NO_TAGS};
use rtc_tests::cluster::RedisCluster;
use rtc_tests::statics::install;
use rtc_tests::{unique_namespace, RedisServer};

static DECORATED: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(tags = ["corrupted"], cache = DECORATED.get().unwrap(), skip(runs))]
fn load(runs: &AtomicU64, item: u64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    item * 10
}

fn cache(builder: rtc::TaggedCacheBuilder) -> TaggedCache {
    builder
        .namespace(unique_namespace("corrupt-tags"))
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Overwrites every tag key of the namespace with bytes that are not a version.
fn corrupt_every_tag(connections: &mut [redis::Connection]) -> usize {
    let mut corrupted = 0;
    for connection in connections {
        let tags: Vec<String> = connection.keys("rtc:t:*").unwrap();
        for tag in tags {
            let _: () = connection.set(&tag, "not a version").unwrap();
            corrupted += 1;
        }
    }
    corrupted
}

#[test]
fn a_decorated_call_repairs_a_corrupt_tag_and_caches_again() {
    let server = RedisServer::start();
    install(&DECORATED, cache(TaggedCache::builder().url(server.url())));
    let runs = AtomicU64::new(0);
    assert_eq!(load(&runs, 1), 10);
    assert!(corrupt_every_tag(&mut [server.connection()]) >= 2);
    // Before the fix, the tag creation that precedes computing failed on the corrupt bytes, and
    // the function was never cached again.
    assert_eq!(load(&runs, 1), 10);
    assert_eq!(load(&runs, 1), 10);
    assert_eq!(load(&runs, 1), 10);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "computed once more after the corruption, then hits"
    );
    assert_eq!(DECORATED.get().unwrap().stats().errors, 0);
}

#[test]
fn set_on_a_cluster_repairs_a_corrupt_tag() {
    let cluster = RedisCluster::start();
    let cache = cache(TaggedCache::builder().cluster_urls(cluster.urls()));
    assert!(cache.set("k", &1, ["t"], Lifetime::Default));
    let mut masters: Vec<redis::Connection> = cluster
        .master_ports()
        .into_iter()
        .map(|port| {
            redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|client| client.get_connection())
                .unwrap()
        })
        .collect();
    assert!(corrupt_every_tag(&mut masters) >= 2);
    assert!(
        cache.get::<i32>("k", ["t"]).is_err(),
        "a corrupt tag is a miss"
    );
    assert!(
        cache.set("k", &2, ["t"], Lifetime::Default),
        "the write repairs the tag"
    );
    assert_eq!(cache.get::<i32>("k", ["t"]), Ok(2));
    assert!(cache.set("other", &3, NO_TAGS, Lifetime::Default));
    assert_eq!(cache.get::<i32>("other", NO_TAGS), Ok(3));
    assert_eq!(cache.stats().errors, 0);
}
