//! rtc on a real Redis Cluster: 3 masters with a replica each, started on loopback.

mod behaviours;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use behaviours::Fixture;
use rtc::{Lifetime, TaggedCache};
use rtc_tests::cluster::RedisCluster;
use rtc_tests::gates::wait_until;
use rtc_tests::staleness::{items, tag, Audit, Data, Reading};
use rtc_tests::statics::install;
use rtc_tests::unique_namespace;
use rtc_tests::workers::{read_until_stopped, Stop};

fn cluster_cache(cluster: &RedisCluster) -> TaggedCache {
    TaggedCache::builder()
        .namespace(unique_namespace("cluster"))
        .cluster_urls(cluster.urls())
        .response_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[test]
fn every_behaviour_on_a_cluster() {
    let cluster = RedisCluster::start();
    behaviours::run_all(|| Fixture::cluster(&cluster));
}

#[test]
fn every_behaviour_on_a_cluster_through_the_applications_client() {
    let cluster = RedisCluster::start();
    behaviours::run_all(|| Fixture::cluster_client(&cluster));
}

#[test]
fn entries_and_tags_spread_over_every_shard() {
    let cluster = RedisCluster::start();
    let cache = cluster_cache(&cluster);
    for i in 0..200 {
        assert!(cache.set(
            format!("k{i}"),
            &i,
            [format!("t{i}"), "shared".into()],
            Lifetime::Default
        ));
    }
    for i in 0..200 {
        assert_eq!(
            cache.get::<i32>(format!("k{i}"), [format!("t{i}"), "shared".into()]),
            Ok(i)
        );
    }
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    for port in masters {
        let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let entries: Vec<String> = redis::cmd("KEYS")
            .arg("rtc:e:*")
            .query(&mut connection)
            .unwrap();
        let tags: Vec<String> = redis::cmd("KEYS")
            .arg("rtc:t:*")
            .query(&mut connection)
            .unwrap();
        assert!(
            entries.len() > 20,
            "master {port} holds {} entries",
            entries.len()
        );
        assert!(tags.len() > 20, "master {port} holds {} tags", tags.len());
    }
    assert!(cache.invalidate(["shared"]));
    assert!(cache.get::<i32>("k1", ["t1", "shared"]).is_err());
}

thread_local! {
    static CURRENT: Cell<Option<&'static TaggedCache>> = const { Cell::new(None) };
}

/// The cache this thread's decorated calls use: a cache per thread, as if each were a process.
fn current() -> &'static TaggedCache {
    CURRENT
        .with(Cell::get)
        .expect("the thread installed its cache")
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[rtc::cached(key = "cluster-cold", lock = true, lock_timeout = 10, cache = current())]
fn slow_on_cluster() -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    7
}

#[test]
fn the_stampede_lock_works_across_caches_on_a_cluster() {
    let cluster = RedisCluster::start();
    let namespace = unique_namespace("cluster-lock");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let cache: &'static TaggedCache = Box::leak(Box::new(
                TaggedCache::builder()
                    .namespace(&namespace)
                    .cluster_urls(cluster.urls())
                    .build()
                    .unwrap(),
            ));
            scope.spawn(move || {
                CURRENT.with(|current| current.set(Some(cache)));
                assert_eq!(slow_on_cluster(), 7);
            });
        }
    });
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        1,
        "eight caches, one computation"
    );
}

static LOAD_CACHE: OnceLock<TaggedCache> = OnceLock::new();

/// The "database": the value is the item and the data version it was computed from.
#[rtc::cached(tags = [tag(item)], cache = LOAD_CACHE.get().unwrap(), skip(data))]
fn load(data: &Data, item: u64) -> Reading {
    data.read(item)
}

#[test]
fn a_master_killed_mid_load_costs_hits_not_correctness() {
    let mut cluster = RedisCluster::start();
    let cache = install(&LOAD_CACHE, cluster_cache(&cluster));
    let data = Data::new(200);
    let audit = Audit::default();
    let stop = Stop::default();
    std::thread::scope(|scope| {
        // Whatever happens below, the readers and the writer stop (a panic would otherwise wait
        // for them forever).
        let _stop = stop.on_exit();
        for seed in 0..4 {
            let (data, audit, stop) = (&data, &audit, &stop);
            scope.spawn(move || {
                let reads = items(seed, data.items());
                read_until_stopped(reads, data, audit, stop, None, load);
            });
        }
        scope.spawn(|| {
            while !stop.is_set() {
                // The floors move only when the cluster acknowledged the invalidation.
                data.change_all_once(invalidate_all_load);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        wait_until(Duration::from_secs(10), "warm", || cache.stats().hits > 100);
        let victim = cluster.master_ports()[0];
        let killed = Instant::now();
        cluster.fail_over(victim);
        let settled = killed.elapsed();
        let hits_after_failover = cache.stats().hits;
        wait_until(
            Duration::from_secs(20),
            "caching resumes after the failover",
            || cache.stats().hits >= hits_after_failover + 100,
        );
        eprintln!(
            "cluster settled {settled:?} after the kill; {:?}",
            cache.stats()
        );
    });
    // Every call returned its item, computed after the last acknowledged invalidation.
    audit.assert_all_fresh();
    assert!(audit.calls() > 200);
}

/// How many `PING`s the node on `port` has run since its statistics were reset.
fn pings_run_on(port: u16) -> u64 {
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("a connection to a cluster node");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection)
        .expect("INFO commandstats");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

fn reset_stats_on(port: u16) {
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("a connection to a cluster node");
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut connection)
        .expect("CONFIG RESETSTAT");
}

#[test]
fn a_ping_reaches_every_primary_sync_and_async() {
    let cluster = RedisCluster::start();
    let cache = cluster_cache(&cluster);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The first pings open the connections (which may send PINGs of their own).
    assert!(cache.ping().is_ok());
    assert!(runtime.block_on(cache.ping_async()).is_ok());
    let primaries = cluster.master_ports();
    assert_eq!(primaries.len(), 3);
    for &port in &primaries {
        reset_stats_on(port);
    }

    let sync = cache.ping();
    let in_async = runtime.block_on(cache.ping_async());

    assert!(sync.is_ok(), "{sync:?}");
    assert!(in_async.is_ok(), "{in_async:?}");
    for port in primaries {
        let pings = pings_run_on(port);
        assert!(pings >= 2, "{pings} PINGs run on the primary at {port}");
    }
}
