//! The `rtc` binary against a real Redis Cluster. A test binary of its own, so that no other
//! test starts servers while the cluster's six nodes pick their ports.

use rtc::{Lifetime, TaggedCache};
use rtc_tests::cluster::RedisCluster;
use rtc_tests::unique_namespace;

mod support;
use support::*;

#[test]
fn on_a_cluster_stats_counts_every_master_invalidate_reaches_every_shard_and_check_pings_every_primary(
) {
    let cluster = RedisCluster::start();
    let namespace = unique_namespace("cli-cluster");
    let cache = TaggedCache::builder()
        .cluster_urls(cluster.urls())
        .namespace(&namespace)
        .build()
        .unwrap();
    for id in 0..20 {
        assert!(cache.set(format!("k{id}"), &id, [format!("t{id}")], Lifetime::Default));
    }
    let args = [
        "--namespace".into(),
        namespace.clone(),
        "--cluster".into(),
        cluster.urls().join(","),
    ];

    let stats = bare_rtc()
        .args(&args)
        .args(["stats", "--json"])
        .output()
        .unwrap();
    let invalidate = bare_rtc()
        .args(&args)
        .args(["invalidate"])
        .args((0..20).map(|id| format!("t{id}")))
        .output()
        .unwrap();

    let check = bare_rtc().args(&args).args(["check"]).output().unwrap();

    assert_exit(&stats, 0);
    let report: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(report["entries"], 20);
    assert_eq!(report["servers"].as_array().map(Vec::len), Some(3));
    assert_exit(&invalidate, 0);
    assert!((0..20).all(|id| cache
        .get::<i32>(format!("k{id}"), [format!("t{id}")])
        .is_err()));
    assert_exit(&check, 0);
    assert_contains(stdout(&check), "PINGs to every primary");
    assert_contains(stdout(&check), "ok: rtc can use namespace");
}
