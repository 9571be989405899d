//! TLS (rustls) and ACL users against real servers: what works, and how a wrong setting fails
//! open without leaking a secret.

use std::time::Duration;

use rtc::{Lifetime, MissKind, TaggedCache, NO_TAGS};
use rtc_tests::tls::TlsServer;
use rtc_tests::{unique_namespace, warnings, RedisServer};

fn round_trip(cache: &TaggedCache) {
    assert!(
        cache.set("k", &"over tls", ["t"], Lifetime::Default),
        "{cache:?}"
    );
    assert_eq!(cache.get::<String>("k", ["t"]).as_deref(), Ok("over tls"));
    assert!(cache.invalidate(["t"]));
    assert_eq!(
        cache.get::<String>("k", ["t"]),
        Err(MissKind::Absent.into())
    );
}

fn quick(builder: rtc::TaggedCacheBuilder) -> rtc::TaggedCacheBuilder {
    builder
        .namespace(unique_namespace("tls"))
        .response_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
}

#[test]
fn a_rediss_url_with_a_custom_ca_works_sync_and_async() {
    let Some(server) = TlsServer::start_or_skip(false) else {
        return;
    };
    let cache = quick(
        TaggedCache::builder()
            .url(server.tls_url())
            .tls_ca_file(server.ca_file()),
    )
    .build()
    .unwrap();
    round_trip(&cache);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(cache.set_async("a", &1, NO_TAGS, Lifetime::Default).await);
        assert_eq!(cache.get_async::<i32>("a", NO_TAGS).await, Ok(1));
    });
}

#[test]
fn ssl_with_host_and_port_works_too() {
    let Some(server) = TlsServer::start_or_skip(false) else {
        return;
    };
    let cache = quick(
        TaggedCache::builder()
            .host("localhost")
            .port(server.tls_port)
            .tls(true)
            .tls_ca_file(server.ca_file()),
    )
    .build()
    .unwrap();
    round_trip(&cache);
}

#[test]
fn an_untrusted_certificate_fails_open_and_skip_verify_accepts_it() {
    let Some(server) = TlsServer::start_or_skip(false) else {
        return;
    };
    let untrusted = quick(TaggedCache::builder().url(server.tls_url()))
        .build()
        .unwrap();
    let (stored, logged) = warnings::capture(|| untrusted.set("k", &1, NO_TAGS, Lifetime::Default));
    assert!(!stored, "the system roots do not trust the test CA");
    assert_eq!(
        untrusted.get::<i32>("k", NO_TAGS),
        Err(MissKind::Unavailable.into())
    );
    assert_eq!(logged.len(), 1, "one warning: {logged:?}");

    let insecure = quick(
        TaggedCache::builder()
            .url(server.tls_url())
            .tls_insecure_skip_verify(true),
    )
    .build()
    .unwrap();
    round_trip(&insecure);
}

#[test]
fn a_server_that_requires_client_certificates_gets_one() {
    let Some(server) = TlsServer::start_or_skip(true) else {
        return;
    };
    let (cert, key) = server.client_cert();
    let with_cert = quick(
        TaggedCache::builder()
            .url(server.tls_url())
            .tls_ca_file(server.ca_file())
            .tls_client_cert(cert, key),
    )
    .build()
    .unwrap();
    round_trip(&with_cert);
    let without = quick(
        TaggedCache::builder()
            .url(server.tls_url())
            .tls_ca_file(server.ca_file()),
    )
    .build()
    .unwrap();
    assert!(
        !without.set("k", &1, NO_TAGS, Lifetime::Default),
        "refused without a client certificate"
    );
}

#[test]
fn tls_settings_that_cannot_work_are_build_errors() {
    let missing = TaggedCache::builder()
        .url("rediss://localhost:6380")
        .tls_ca_file("/nonexistent/ca.crt")
        .build();
    assert!(
        matches!(missing, Err(rtc::ConfigError::TlsFile { .. })),
        "{missing:?}"
    );
    let plain = TaggedCache::builder()
        .url("redis://localhost:6379")
        .tls_ca_file("ca.crt")
        .build();
    assert!(
        matches!(plain, Err(rtc::ConfigError::Contradictory(_))),
        "{plain:?}"
    );
}

/// A server with an ACL user confined to one namespace's keys.
fn acl_server(namespace: &str) -> (RedisServer, String) {
    let server = RedisServer::start();
    let pattern = TaggedCache::builder()
        .namespace(namespace)
        .in_memory()
        .build()
        .unwrap()
        .key_pattern();
    let mut admin = server.connection();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("shop")
        .arg("on")
        .arg(">s3cret-pa55")
        .arg(format!("~{pattern}"))
        .arg("+@all")
        .arg("-@dangerous")
        .query(&mut admin)
        .unwrap();
    (server, pattern)
}

#[test]
fn an_acl_user_confined_to_the_namespace_can_use_it_and_nothing_else() {
    let namespace = unique_namespace("acl");
    let (server, _) = acl_server(&namespace);
    let url = format!("redis://shop:s3cret-pa55@127.0.0.1:{}/0", server.port());
    let allowed = TaggedCache::builder()
        .namespace(&namespace)
        .url(&url)
        .build()
        .unwrap();
    assert!(allowed.set("k", &1, ["t"], Lifetime::Default));
    assert_eq!(allowed.get::<i32>("k", ["t"]), Ok(1));
    assert!(allowed.invalidate(["t"]));
    assert!(allowed.invalidate_all());

    let fields = TaggedCache::builder()
        .namespace(&namespace)
        .port(server.port())
        .username("shop")
        .password("s3cret-pa55")
        .build()
        .unwrap();
    assert!(fields.set("k2", &2, NO_TAGS, Lifetime::Default));

    let elsewhere = TaggedCache::builder()
        .namespace("another-namespace")
        .url(&url)
        .build()
        .unwrap();
    let (stored, logged) = warnings::capture(|| elsewhere.set("k", &1, ["t"], Lifetime::Default));
    assert!(!stored, "NOPERM outside the namespace");
    assert_eq!(
        elsewhere.get::<i32>("k", ["t"]),
        Err(MissKind::Unavailable.into())
    );
    assert!(
        logged
            .iter()
            .any(|warning| warning.to_string().to_lowercase().contains("noperm")),
        "{logged:?}"
    );
}

#[test]
fn a_wrong_password_warns_once_fails_open_and_never_shows_the_password() {
    let namespace = unique_namespace("acl-wrong");
    let (server, _) = acl_server(&namespace);
    let cache = TaggedCache::builder()
        .namespace(&namespace)
        .port(server.port())
        .username("shop")
        .password("not-the-password")
        .build()
        .unwrap();
    let (results, logged) = warnings::capture(|| {
        (0..100)
            .map(|i| cache.set(format!("k{i}"), &i, NO_TAGS, Lifetime::Default))
            .collect::<Vec<bool>>()
    });
    assert!(results.iter().all(|stored| !stored));
    assert_eq!(
        cache.get::<i32>("k1", NO_TAGS),
        Err(MissKind::Unavailable.into())
    );
    assert_eq!(
        logged.len(),
        1,
        "one warning for 100 failing calls: {logged:?}"
    );
    let text = format!("{logged:?} {cache:?}");
    assert!(
        !text.contains("not-the-password"),
        "the password leaked: {text}"
    );
}
