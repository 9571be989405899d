use std::error::Error as _;

use redis::ConnectionAddr;

use super::*;

fn error_of(builder: TaggedCacheBuilder) -> ConfigError {
    builder.settings().expect_err("settings should be refused")
}

#[test]
fn unsupported_and_unparsable_urls_are_refused() {
    let builder = TaggedCacheBuilder::default;
    assert!(matches!(
        error_of(builder().url("http://localhost")),
        ConfigError::InvalidUrl { .. }
    ));
    assert!(matches!(
        error_of(builder().url("localhost:6379")),
        ConfigError::InvalidUrl { .. }
    ));
    let refused = error_of(builder().url("redis://localhost/notadb"));
    assert!(matches!(refused, ConfigError::InvalidUrl { .. }));
    assert!(
        refused.source().is_some(),
        "redis-rs's own error is kept as the source"
    );
}

#[test]
fn near_cache_and_max_entries_settings() {
    let builder = TaggedCacheBuilder::default;
    assert!(matches!(
        error_of(builder().near_cache(0)),
        ConfigError::Invalid(_)
    ));
    assert!(matches!(
        error_of(builder().in_memory().max_entries(0)),
        ConfigError::Invalid(_)
    ));
    let near = builder()
        .near_cache(10)
        .near_cache_max_age(Duration::from_secs(5))
        .settings()
        .unwrap()
        .near
        .unwrap();
    assert_eq!(
        (near.max_entries, near.max_age),
        (10, Some(Duration::from_secs(5)))
    );
    let memory = builder().in_memory().near_cache(10).settings().unwrap();
    assert!(memory.near.is_none(), "ignored in memory");
}

/// Where the settings say entries live, as a short name (addresses without credentials).
fn storage_of(builder: TaggedCacheBuilder) -> String {
    match builder.settings().expect("valid settings").storage {
        Storage::Disabled => "disabled".to_owned(),
        Storage::Memory => "memory".to_owned(),
        Storage::Redis(info) => format!("{} db {}", info.addr(), info.redis_settings().db()),
        Storage::Sentinel(sentinel) => format!("sentinel {}", sentinel.service),
        Storage::Cluster(nodes) => format!("cluster of {}", nodes.len()),
        Storage::ClusterClient(_) => "cluster client".to_owned(),
    }
}

#[test]
fn the_last_storage_given_wins() {
    let builder = TaggedCacheBuilder::default;
    assert_eq!(storage_of(builder()), "127.0.0.1:6379 db 0");
    assert_eq!(
        storage_of(builder().url("redis://h:7/2").in_memory()),
        "memory"
    );
    assert_eq!(
        storage_of(builder().in_memory().url("redis://h:7/2")),
        "h:7 db 2"
    );
    assert_eq!(
        storage_of(builder().url("redis://h:7").port(1)),
        "127.0.0.1:1 db 0"
    );
    assert_eq!(storage_of(builder().host("h").port(8)), "h:8 db 0");
    assert_eq!(storage_of(builder().port(8).host("h")), "h:8 db 0");
    assert_eq!(
        storage_of(builder().host("h").cluster_urls(["redis://c:7000"])),
        "cluster of 1"
    );
    assert_eq!(
        storage_of(
            builder()
                .cluster_urls(["redis://c:7000"])
                .sentinel(["redis://s:1"], "p")
        ),
        "sentinel p"
    );
    assert_eq!(
        storage_of(builder().sentinel(["redis://s:1"], "p").host("h")),
        "h:6379 db 0"
    );
    let client = redis::Client::open("redis://c:9/4").unwrap();
    assert_eq!(
        storage_of(builder().in_memory().client(&client)),
        "c:9 db 4"
    );
    let cluster = redis::cluster::ClusterClient::new(["redis://c:7000"]).unwrap();
    assert_eq!(
        storage_of(builder().url("redis://h").cluster_client(&cluster)),
        "cluster client"
    );
    assert_eq!(
        storage_of(builder().cluster_client(&cluster).in_memory()),
        "memory"
    );
}

#[test]
fn a_cluster_client_is_used_as_it_is() {
    let cluster = redis::cluster::ClusterClient::new(["redis://c:7000"]).unwrap();
    let builder = || TaggedCacheBuilder::default().cluster_client(&cluster);
    for refining in [
        builder().db(1),
        builder().password("p"),
        builder().username("u"),
        builder().tls(true),
    ] {
        assert!(matches!(error_of(refining), ConfigError::Contradictory(_)));
    }
    let near = builder()
        .near_cache(10)
        .build()
        .expect_err("no seeds to track");
    assert!(matches!(near, ConfigError::Contradictory(_)));
    assert!(near.to_string().contains("cluster_urls()"));
}

#[test]
fn disabled_turns_any_storage_off_and_false_leaves_it() {
    let builder = TaggedCacheBuilder::default;
    for storage in [
        builder().url("redis://h"),
        builder().in_memory(),
        builder().cluster_urls(["redis://c:1"]),
    ] {
        assert_eq!(storage_of(storage.clone().disabled(true)), "disabled");
        assert_ne!(storage_of(storage.disabled(false)), "disabled");
    }
}

#[test]
fn connection_settings_refine_the_url_they_are_given_with() {
    let settings = TaggedCacheBuilder::default()
        .url("redis://olduser:oldpass@h:7/1")
        .db(3)
        .username("app")
        .password("hunter2")
        .settings()
        .unwrap();
    let Storage::Redis(info) = settings.storage else {
        panic!("a Redis storage");
    };
    let redis = info.redis_settings();
    assert_eq!(
        (redis.db(), redis.username(), redis.password()),
        (3, Some("app"), Some("hunter2"))
    );
    let untouched = storage_of(TaggedCacheBuilder::default().url("redis://h:7/1"));
    assert_eq!(untouched, "h:7 db 1");
    assert!(matches!(
        error_of(
            TaggedCacheBuilder::default()
                .cluster_urls(["redis://c:1"])
                .db(2)
        ),
        ConfigError::Invalid(_)
    ));
    assert!(matches!(
        error_of(TaggedCacheBuilder::default().cluster_urls(["redis://c:1/2"])),
        ConfigError::Invalid(_)
    ));
}

#[cfg(feature = "tls")]
#[test]
fn tls_true_upgrades_a_plain_url_or_host() {
    for builder in [
        TaggedCacheBuilder::default().url("redis://h:7").tls(true),
        TaggedCacheBuilder::default().host("h").tls(true),
    ] {
        let Storage::Redis(info) = builder.settings().unwrap().storage else {
            panic!("a Redis storage");
        };
        assert!(matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
    }
}

#[test]
fn tls_files_for_a_connection_without_tls_are_refused() {
    assert!(matches!(
        error_of(
            TaggedCacheBuilder::default()
                .url("redis://h")
                .tls_insecure_skip_verify(true)
        ),
        ConfigError::Contradictory(_)
    ));
    let plain = TaggedCacheBuilder::default()
        .url("redis://h")
        .settings()
        .unwrap();
    assert!(
        matches!(plain.storage, Storage::Redis(info) if matches!(info.addr(), ConnectionAddr::Tcp(..)))
    );
}

#[test]
fn zero_is_refused_for_every_length_of_time() {
    let builder = TaggedCacheBuilder::default;
    for zero in [
        builder().response_timeout(Duration::ZERO),
        builder().connect_timeout(Duration::ZERO),
        builder().default_lifetime(Duration::ZERO),
        builder().lifetime_for_tags(Duration::ZERO),
        builder().near_cache(10).near_cache_max_age(Duration::ZERO),
        builder().stale_if_error(Duration::ZERO),
        builder().stale_while_revalidate(Duration::ZERO),
        builder().stale_if_slow(Duration::ZERO),
    ] {
        assert!(matches!(error_of(zero), ConfigError::Invalid(_)));
    }
}

#[test]
fn sentinel_settings_that_cannot_work_are_refused() {
    assert!(matches!(
        error_of(TaggedCacheBuilder::default().sentinel(Vec::<String>::new(), "primary")),
        ConfigError::Invalid(_)
    ));
    assert!(matches!(
        error_of(TaggedCacheBuilder::default().sentinel(["redis://s1:26379"], "")),
        ConfigError::Invalid(_)
    ));
    assert!(matches!(
        error_of(TaggedCacheBuilder::default().sentinel(["redis://s1:26379/2"], "primary")),
        ConfigError::Invalid(_)
    ));
    assert!(matches!(
        error_of(TaggedCacheBuilder::default().sentinel(["http://s1:26379"], "primary")),
        ConfigError::InvalidUrl { .. }
    ));
}

#[test]
fn db_and_credentials_go_to_the_primary_and_the_urls_credentials_to_the_sentinels() {
    let settings = TaggedCacheBuilder::default()
        .sentinel(
            ["redis://:sentinel-secret@s1:26379", "redis://s2:26379"],
            "primary",
        )
        .db(3)
        .username("app")
        .password("hunter2")
        .settings()
        .unwrap();
    let Storage::Sentinel(sentinel) = &settings.storage else {
        panic!("a sentinel storage");
    };
    assert_eq!(sentinel.service, "primary");
    let primary = sentinel.primary.redis_settings();
    assert_eq!(
        (primary.db(), primary.username(), primary.password()),
        (3, Some("app"), Some("hunter2"))
    );
    let first = sentinel.sentinels[0].redis_settings();
    assert_eq!(first.password(), Some("sentinel-secret"));
    assert_eq!(sentinel.sentinels[1].redis_settings().password(), None);
    let shown = format!("{settings:?}");
    assert!(shown.contains("s1:26379") && shown.contains("`primary` db 3"));
    assert!(!shown.contains("hunter2") && !shown.contains("sentinel-secret"));
}

#[test]
fn debug_output_never_shows_the_password() {
    let builder = TaggedCacheBuilder::default()
        .username("app")
        .password("hunter2");
    assert!(!format!("{builder:?}").contains("hunter2"));
    let settings = builder.clone().settings().unwrap();
    assert!(!format!("{settings:?}").contains("hunter2"));
    let url = TaggedCacheBuilder::default().url("redis://app:hunter2@localhost/");
    assert!(!format!("{url:?}").contains("hunter2"));
    assert!(!format!("{:?}", url.settings().unwrap()).contains("hunter2"));
}

#[test]
fn lifetimes_say_what_they_mean() {
    let defaults = TaggedCacheBuilder::default().settings().unwrap();
    assert_eq!(defaults.default_lifetime, Some(DEFAULT_ENTRY_LIFETIME));
    assert_eq!(defaults.lifetime_for_tags, Some(DEFAULT_TAG_LIFETIME));
    let never = TaggedCacheBuilder::default()
        .default_lifetime(Lifetime::Never)
        .lifetime_for_tags(Lifetime::Never)
        .settings()
        .unwrap();
    assert_eq!(
        (never.default_lifetime, never.lifetime_for_tags),
        (None, None)
    );
    let minute = Duration::from_secs(60);
    let given = TaggedCacheBuilder::default()
        .default_lifetime(minute)
        .lifetime_for_tags(Lifetime::After(minute))
        .settings()
        .unwrap();
    assert_eq!(
        (given.default_lifetime, given.lifetime_for_tags),
        (Some(minute), Some(minute))
    );
}
