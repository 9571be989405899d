//! The near cache on a real Redis Cluster (3 masters, a replica each): the masters track what
//! the fills read there (`OPTIN`), the replicas every change under the namespace (`BCAST`),
//! changes on any shard are announced, and a failover drops what the near cache held.

use std::time::Duration;

use rtc::{Lifetime, TaggedCache};
use rtc_tests::cluster::RedisCluster;
use rtc_tests::gates::wait_until;
use rtc_tests::{info_stat, unique_namespace};

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

/// Each node's role and its `tracking_total_prefixes` and `tracking_total_keys` (`INFO stats`).
fn tracking(cluster: &RedisCluster) -> Vec<(bool, u64, u64)> {
    cluster
        .urls()
        .iter()
        .map(|url| {
            let mut connection = redis::Client::open(url.as_str())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
                .unwrap();
            let role: redis::Value = redis::cmd("ROLE").query(&mut connection).unwrap();
            let master = matches!(&role, redis::Value::Array(parts)
                if parts.first() == Some(&redis::Value::BulkString(b"master".to_vec())));
            (
                master,
                info_stat(&mut connection, "tracking_total_prefixes"),
                info_stat(&mut connection, "tracking_total_keys"),
            )
        })
        .collect()
}

/// The keys the masters track, all together.
fn tracked_on_masters(cluster: &RedisCluster) -> u64 {
    tracking(cluster)
        .iter()
        .filter(|(master, _, _)| *master)
        .map(|(_, _, keys)| keys)
        .sum()
}

#[test]
fn masters_track_what_the_fills_read_and_replicas_every_change() {
    let cluster = RedisCluster::start();
    let namespace = unique_namespace("near-cluster-optin");
    let near = cache(&cluster, &namespace, true);
    let other = cache(&cluster, &namespace, false);
    // A master broadcasts nothing; a replica announces every write it applies (once it is
    // in the slots' layout: a replica that attached after tracking began joins at the next
    // heartbeat).
    wait_until(PATIENCE, "every replica tracked", || {
        let nodes = tracking(&cluster);
        assert_eq!(nodes.iter().filter(|(master, _, _)| *master).count(), 3);
        assert!(
            nodes
                .iter()
                .all(|(master, prefixes, _)| !*master || *prefixes == 0),
            "{nodes:?}"
        );
        nodes
            .iter()
            .all(|(master, prefixes, _)| *master || *prefixes == 2)
    });
    wait_until(PATIENCE, "near cache tracking", || near.near_cache_active());
    let before = tracked_on_masters(&cluster);
    for item in 0..50 {
        assert!(other.set(format!("other:{item}"), &item, ["u"], Lifetime::Default));
    }
    assert_eq!(
        tracked_on_masters(&cluster),
        before,
        "writes of keys nobody read near track nothing"
    );
    write_all(&other, 1);
    warm(&near, 1);
    let filled = tracked_on_masters(&cluster);
    assert!(
        filled >= before + KEYS as u64,
        "each fill's entry and tags are tracked on their masters ({before} keys before the fills, {filled} after)"
    );
    write_all(&other, 2);
    converges(&near, 2, 1);
    // An async fill is routed the same way, and kept.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    assert!(other.set("async", &3, ["async"], Lifetime::Default));
    wait_until(PATIENCE, "an async near hit", || {
        let before = near.stats().near_hits;
        let read = runtime.block_on(near.get_async::<u64>("async", ["async"]));
        read == Ok(3) && near.stats().near_hits > before
    });
    assert!(other.invalidate(["async"]));
    wait_until(PATIENCE, "the invalidation announced", || {
        runtime
            .block_on(near.get_async::<u64>("async", ["async"]))
            .is_err()
    });
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
