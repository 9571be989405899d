//! The near cache behind Redis Sentinel (a primary, a replica, three sentinels): tracking on the
//! primary (`OPTIN`, what the fills read) and its replicas (`BCAST`), and a failover that drops
//! what the near cache held.

use std::time::Duration;

use rtc::{Lifetime, TaggedCache};
use rtc_tests::gates::wait_until;
use rtc_tests::sentinel::{RedisSentinel, SERVICE};
use rtc_tests::unique_namespace;

const PATIENCE: Duration = Duration::from_secs(30);

fn cache(deployment: &RedisSentinel, namespace: &str, near: bool) -> TaggedCache {
    let mut builder = TaggedCache::builder()
        .namespace(namespace)
        .sentinel(deployment.urls(), SERVICE)
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500));
    if near {
        builder = builder.near_cache(100);
    }
    let cache = builder.build().unwrap();
    if near {
        wait_until(PATIENCE, "near cache tracking", || {
            cache.near_cache_active()
        });
    }
    cache
}

fn answered_near(cache: &TaggedCache, value: i32) {
    wait_until(PATIENCE, "a near hit", || {
        let before = cache.stats().near_hits;
        cache.get::<i32>("k", ["t"]) == Ok(value) && cache.stats().near_hits > before
    });
}

/// A number from the `stats` section of the `INFO` of the node the sentinels call `port`.
fn info_stat(deployment: &RedisSentinel, port: u16, field: &str) -> u64 {
    rtc_tests::info_stat(&mut deployment.node(port).connection(), field)
}

/// The port of the primary's first replica, from its `INFO replication`.
fn replica_of(deployment: &RedisSentinel, primary: u16) -> u16 {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut deployment.node(primary).connection())
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("slave0:"))
        .and_then(|fields| {
            fields
                .split(',')
                .find_map(|field| field.strip_prefix("port="))
        })
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no replica in the primary's INFO replication:\n{info}"))
}

/// The primary announces only the keys the fills read (`OPTIN`): no prefix is broadcast there,
/// writes of entries nobody holds near are tracked for nobody, and a fill's keys join its
/// tracking table. The replica tracks the namespace's two prefixes (`BCAST`), so that it has
/// announced every write it applied if a failover promotes it.
#[test]
fn behind_sentinel_the_primary_tracks_what_the_fills_read_and_its_replica_every_change() {
    let deployment = RedisSentinel::start(1);
    let namespace = unique_namespace("near-sentinel-optin");
    let near = cache(&deployment, &namespace, true);
    let other = cache(&deployment, &namespace, false);
    let primary = deployment
        .primary_port()
        .expect("the sentinels name a primary");
    let replica = replica_of(&deployment, primary);
    assert_eq!(
        info_stat(&deployment, primary, "tracking_total_prefixes"),
        0
    );
    assert_eq!(
        info_stat(&deployment, replica, "tracking_total_prefixes"),
        2
    );
    let before = info_stat(&deployment, primary, "tracking_total_keys");
    for item in 0..50 {
        assert!(other.set(format!("other:{item}"), &item, ["u"], Lifetime::Default));
    }
    // The writer's data connection learns its set's two tags in-band (`u` and the namespace's),
    // so that its next sets are plain `SET`s; no entry key is tracked.
    assert_eq!(
        info_stat(&deployment, primary, "tracking_total_keys"),
        before + 2,
        "writes of keys nobody read near track no entry"
    );
    assert!(other.set("k", &1, ["t"], Lifetime::Default));
    answered_near(&near, 1);
    let filled = info_stat(&deployment, primary, "tracking_total_keys");
    assert!(
        filled >= before + 3,
        "the entry key, its tag and the namespace's are tracked ({before} keys before the fill, {filled} after)"
    );
    assert!(other.set("k", &2, ["t"], Lifetime::Default));
    answered_near(&near, 2);
}

#[test]
fn behind_sentinel_changes_and_a_failover_reach_the_near_cache() {
    let mut deployment = RedisSentinel::start(1);
    let namespace = unique_namespace("near-sentinel");
    let near = cache(&deployment, &namespace, true);
    let other = cache(&deployment, &namespace, false);
    assert!(other.set("k", &1, ["t"], Lifetime::Default));
    answered_near(&near, 1);
    assert!(other.invalidate(["t"]));
    wait_until(PATIENCE, "the invalidation", || {
        near.get::<i32>("k", ["t"]).is_err()
    });
    assert!(other.set("k", &2, ["t"], Lifetime::Default));
    answered_near(&near, 2);

    let old = deployment.kill_primary();
    deployment.wait_for_new_primary(old);
    wait_until(PATIENCE, "a write to the new primary", || {
        other.set("k", &3, ["t"], Lifetime::Default)
    });
    wait_until(PATIENCE, "tracking back", || near.near_cache_active());
    wait_until(PATIENCE, "the value written after the failover", || {
        let read = near.get::<i32>("k", ["t"]);
        assert_ne!(
            read,
            Ok(2),
            "a value whose change went unannounced was served"
        );
        read == Ok(3)
    });
    answered_near(&near, 3);
}

/// The sentinels are asked again at every heartbeat (1 s), on the connection kept from the
/// last time: not a new connection (and, with TLS, a new handshake) each second.
///
/// The first sentinel's `CLIENT LIST` shows the connection that asks it (its last command is a
/// `SENTINEL` one), its `age` and how long it has been `idle`: `age - idle` is how long after
/// it was opened it was last used. A connection per heartbeat is used once, right after it
/// opens; a kept one is used by heartbeat after heartbeat, so that span grows. The test waits
/// for a connection used 3 s after it opened, however long the heartbeats take on a loaded
/// machine. Counting the connections the sentinel received instead also counts the sentinels'
/// own, which come and go.
#[test]
fn each_heartbeat_asks_the_sentinels_on_the_connection_it_kept() {
    let deployment = RedisSentinel::start(1);
    let first_sentinel = deployment.urls()[0].clone();
    let near = cache(&deployment, &unique_namespace("near-sentinel-asks"), true);
    let mut connection = redis::Client::open(first_sentinel.as_str())
        .and_then(|client| client.get_connection())
        .expect("a connection to the first sentinel");
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split(' ')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let mut clients = String::new();
    // (age, idle) of each connection whose last command was a `SENTINEL` one.
    let mut askers = |clients: &mut String| -> Vec<(u64, u64)> {
        *clients = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut connection)
            .expect("CLIENT LIST");
        clients
            .lines()
            .filter(|line| line.contains(" cmd=sentinel|"))
            .filter_map(|line| Some((field(line, "age")?, field(line, "idle")?)))
            .collect()
    };
    let mut seen = Vec::new();
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            PATIENCE,
            "a sentinel connection asked again 3 s after it opened",
            || {
                seen = askers(&mut clients);
                seen.iter()
                    .any(|&(age, idle)| age.saturating_sub(idle) >= 3)
            },
        )
    }));
    assert!(
        waited.is_ok(),
        "no connection asked the sentinel again (age, idle): {seen:?}\n{clients}"
    );
    assert!(near.near_cache_active());
}
