//! The near cache on a real Redis Cluster (3 masters, a replica each): tracking on every node,
//! changes on any shard announced, and a failover that drops what the near cache held.

use std::time::Duration;

use rtc::{Lifetime, TaggedCache};
use rtc_tests::cluster::RedisCluster;
use rtc_tests::gates::wait_until;
use rtc_tests::unique_namespace;

const PATIENCE: Duration = Duration::from_secs(30);
const KEYS: usize = 24;

fn cache(cluster: &RedisCluster, namespace: &str, near: bool) -> TaggedCache {
    let mut builder = TaggedCache::builder()
        .namespace(namespace)
        .cluster_urls(cluster.urls())
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500));
    if near {
        builder = builder.near_cache(1_000);
    }
    let cache = builder.build().unwrap();
    if near {
        wait_until(PATIENCE, "near cache tracking", || {
            cache.near_cache_active()
        });
    }
    cache
}

/// Reads every key until each read has been answered near once.
fn warm(cache: &TaggedCache, value: u64) {
    for n in 0..KEYS {
        let key = format!("k{n}");
        let tags = [format!("t{n}")];
        wait_until(PATIENCE, "a near hit", || {
            let before = cache.stats().near_hits;
            let read = cache.get::<u64>(&key, &tags);
            read == Ok(value) && cache.stats().near_hits > before
        });
    }
}

fn write_all(cache: &TaggedCache, value: u64) {
    for n in 0..KEYS {
        let key = format!("k{n}");
        wait_until(PATIENCE, "a write", || {
            cache.set(&key, &value, [format!("t{n}")], Lifetime::Default)
        });
    }
}

/// Every key eventually reads `value`, and no read returns `stale`.
fn converges(cache: &TaggedCache, value: u64, stale: u64) {
    for n in 0..KEYS {
        let key = format!("k{n}");
        let tags = [format!("t{n}")];
        wait_until(PATIENCE, "the new value", || {
            let read = cache.get::<u64>(&key, &tags);
            assert_ne!(
                read,
                Ok(stale),
                "{key}: a value whose change went unannounced"
            );
            read == Ok(value)
        });
    }
}

#[test]
fn changes_on_every_shard_reach_the_near_cache() {
    let cluster = RedisCluster::start();
    let namespace = unique_namespace("near-cluster");
    let near = cache(&cluster, &namespace, true);
    let other = cache(&cluster, &namespace, false);
    write_all(&other, 1);
    warm(&near, 1);
    for n in 0..KEYS {
        assert!(other.invalidate([format!("t{n}")]));
    }
    for n in 0..KEYS {
        let key = format!("k{n}");
        let tags = [format!("t{n}")];
        wait_until(PATIENCE, "the invalidation", || {
            near.get::<u64>(&key, &tags).is_err()
        });
    }
    write_all(&other, 2);
    converges(&near, 2, 1);
}

#[test]
fn a_failover_drops_the_near_entries() {
    let mut cluster = RedisCluster::start();
    let namespace = unique_namespace("near-failover");
    let near = cache(&cluster, &namespace, true);
    let other = cache(&cluster, &namespace, false);
    write_all(&other, 1);
    warm(&near, 1);
    let master = cluster.master_ports()[0];
    cluster.fail_over(master);
    write_all(&other, 2);
    wait_until(PATIENCE, "tracking back", || near.near_cache_active());
    converges(&near, 2, 1);
}
