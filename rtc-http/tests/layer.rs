//! The layer over real HTTP (axum on a free port, hyper's client) and a real `redis-server`:
//! hits, invalidation across instances, the stampede lock, `Vary`, what is never stored,
//! conditional requests, serve-stale, `HEAD`, and handler tags invalidated mid-request.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rtc_http::ResponseCacheBuilder;
use rtc_tests::{unique_namespace, RedisServer};
use support::{wait_until, App, Upstream};

fn same(builder: ResponseCacheBuilder) -> ResponseCacheBuilder {
    builder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_get_is_a_hit_and_the_upstream_is_not_called() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("hit"), &upstream, same).await;

    let first = app.get("/books/1?b=2&a=1").await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (StatusCode::OK, "book 1 v1")
    );
    assert_eq!(first.cache(), "miss");
    let second = app.get("/books/1?a=1&b=2").await;
    assert_eq!(second.body, "book 1 v1");
    assert_eq!(second.cache(), "hit");
    assert!(second.headers.contains_key("age"));
    assert_eq!(second.header("etag"), first.header("etag"));
    assert_eq!(upstream.calls("book"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_invalidates_a_tag_makes_the_next_get_miss_on_every_instance() {
    let redis = RedisServer::start();
    let namespace = unique_namespace("instances");
    let upstream = Upstream::new();
    let a = App::start(&redis.url(), &namespace, &upstream, same).await;
    let b = App::start(&redis.url(), &namespace, &upstream, same).await;

    // A route tag (book:1) and handler tags (the shelf's book:1 and book:2).
    assert_eq!(a.get("/books/1").await.body, "book 1 v1");
    let shelf = "shelf: book 1 v1, book 2 v1";
    assert_eq!(a.get("/shelf").await.body, shelf); // learns the handler's tags
    assert_eq!(a.get("/shelf").await.body, shelf); // stored
    for app in [&a, &b] {
        let book = app.get("/books/1").await;
        assert_eq!((book.body.as_str(), book.cache()), ("book 1 v1", "hit"));
        let listed = app.get("/shelf").await;
        assert_eq!((listed.body.as_str(), listed.cache()), (shelf, "hit"));
    }
    let (books, shelves) = (upstream.calls("book"), upstream.calls("shelf"));

    assert_eq!(a.put("/books/1").await.body, "book 1 v2");
    let book = b.get("/books/1").await;
    assert_eq!((book.body.as_str(), book.cache()), ("book 1 v2", "miss"));
    let listed = b.get("/shelf").await;
    let shelf = "shelf: book 1 v2, book 2 v1";
    assert_eq!((listed.body.as_str(), listed.cache()), (shelf, "miss"));
    assert_eq!(a.get("/books/1").await.body, "book 1 v2");
    assert_eq!(a.get("/shelf").await.body, shelf);
    assert_eq!(upstream.calls("book"), books + 1);
    assert_eq!(upstream.calls("shelf"), shelves + 1);

    // Invalidated from the other instance, a handler-only tag (book:2).
    assert_eq!(b.put("/books/2").await.body, "book 2 v2");
    let shelf = "shelf: book 1 v2, book 2 v2";
    assert_eq!(a.get("/shelf").await.body, shelf);
    assert_eq!(b.get("/shelf").await.body, shelf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_cold_gets_reach_the_upstream_once() {
    let redis = RedisServer::start();
    let namespace = unique_namespace("stampede");
    let upstream = Upstream::new();
    let patient = |builder: ResponseCacheBuilder| builder.lock_timeout(Duration::from_secs(60));
    let a = Arc::new(App::start(&redis.url(), &namespace, &upstream, patient).await);
    let b = Arc::new(App::start(&redis.url(), &namespace, &upstream, patient).await);

    let requests: Vec<_> = (0..32)
        .map(|i| {
            let app = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { app.get("/held/books/7").await })
        })
        .collect();
    // One request is upstream, held at the gate; the 31 others wait for it (16 on one
    // instance, 15 on the other).
    wait_until(
        "31 requests wait for the first one, which is upstream",
        || {
            a.cache.stats().lock_waits + b.cache.stats().lock_waits >= 31
                && upstream.arrived.load(Ordering::SeqCst) >= 1
        },
    )
    .await;
    assert_eq!(upstream.arrived.load(Ordering::SeqCst), 1);
    upstream.open(32);
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "book 7 v1")
        );
    }
    assert_eq!(upstream.calls("held-book"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_separates_entries() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("vary"), &upstream, same).await;
    let french = [("accept-language", "fr")];

    // The first response teaches the layer the `Vary`; from then on each language has its entry.
    assert_eq!(app.get_with("/greeting", &french).await.body, "bonjour");
    for _ in 0..2 {
        assert_eq!(app.get_with("/greeting", &french).await.body, "bonjour");
        assert_eq!(app.get("/greeting").await.body, "hello");
    }
    let calls = upstream.calls("greeting");
    let hit = app.get_with("/greeting", &french).await;
    assert_eq!((hit.body.as_str(), hit.cache()), ("bonjour", "hit"));
    let hit = app.get("/greeting").await;
    assert_eq!((hit.body.as_str(), hit.cache()), ("hello", "hit"));
    assert_eq!(hit.header("vary"), "Accept-Language");
    assert_eq!(upstream.calls("greeting"), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_set_cookie_large_streamed_and_404_responses_are_not_cached() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("uncached"), &upstream, same).await;
    for (path, name, status, body_length) in [
        ("/no-store", "no-store", StatusCode::OK, 15),
        ("/cookie", "cookie", StatusCode::OK, 10),
        ("/large", "large", StatusCode::OK, 2 << 20),
        ("/streamed", "streamed", StatusCode::OK, 13),
        ("/missing", "missing", StatusCode::NOT_FOUND, 12),
    ] {
        for round in 1..=3 {
            let reply = app.get(path).await;
            assert_eq!(reply.status, status, "{path}");
            assert_eq!(reply.body.len(), body_length, "{path}");
            // The first is looked up (a miss); then the key is known uncacheable (pass).
            let expected = if round == 1 { "miss" } else { "pass" };
            assert_eq!(reply.cache(), expected, "{path}, request {round}");
            assert_eq!(upstream.calls(name), round, "{path}");
        }
    }
    let reply = app.get("/cookie").await;
    assert_eq!(reply.header("set-cookie"), "session=abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_gets_a_304_from_the_entry() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("etag"), &upstream, same).await;

    let first = app.get("/books/3").await;
    let etag = first.header("etag").to_owned();
    assert!(etag.starts_with('"'), "{etag:?}");
    let revalidated = app.get_with("/books/3", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.body, "");
    assert_eq!(revalidated.header("etag"), etag);
    assert_eq!(revalidated.cache(), "hit");
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {weak}");
    assert_eq!(
        app.get_with("/books/3", &[("if-none-match", &listed)])
            .await
            .status,
        StatusCode::NOT_MODIFIED
    );
    let other = app
        .get_with("/books/3", &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(
        (other.status, other.body.as_str()),
        (StatusCode::OK, "book 3 v1")
    );
    assert_eq!(upstream.calls("book"), 1);

    // After a write the old tag no longer matches: the new body, with a new tag.
    app.put("/books/3").await;
    let changed = app.get_with("/books/3", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (changed.status, changed.body.as_str()),
        (StatusCode::OK, "book 3 v2")
    );
    assert_ne!(changed.header("etag"), etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_is_answered_from_a_gets_entry() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("head"), &upstream, same).await;

    let get = app.get("/books/4").await;
    let head = app.head("/books/4").await;
    assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));
    assert_eq!(head.cache(), "hit");
    assert_eq!(head.header("content-length"), get.body.len().to_string());
    assert_eq!(head.header("etag"), get.header("etag"));
    assert_eq!(upstream.calls("book"), 1);

    // A cold HEAD fills the entry with a GET, which the next GET hits.
    let head = app.head("/books/5").await;
    assert_eq!((head.body.as_str(), head.cache()), ("", "miss"));
    assert_eq!(head.header("content-length"), "9");
    let get = app.get("/books/5").await;
    assert_eq!((get.body.as_str(), get.cache()), ("book 5 v1", "hit"));
    assert_eq!(upstream.calls("book"), 2);
}

/// Waits until a response stored for `lifetime` is past it on Redis's clock (no assertion
/// depends on how long this takes).
async fn outlive(lifetime: Duration) {
    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_response_is_served_when_the_upstream_fails_inside_the_window_and_never_after_an_invalidation(
) {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let lifetime = Duration::from_millis(200);
    let stale = |builder: ResponseCacheBuilder| {
        builder
            .lifetime(lifetime)
            .stale_if_error(Duration::from_secs(600))
    };
    let app = App::start(&redis.url(), &unique_namespace("stale"), &upstream, stale).await;

    assert_eq!(app.get("/flaky").await.body, "flaky v1");
    outlive(lifetime).await;
    upstream.failing.store(true, Ordering::SeqCst);
    let served = app.get("/flaky").await;
    assert_eq!(
        (served.status, served.body.as_str()),
        (StatusCode::OK, "flaky v1")
    );
    assert_eq!(served.cache(), "stale");
    assert_eq!(upstream.calls("flaky"), 2);

    assert!(app.cache.invalidate_async(["flaky"]).await);
    let failed = app.get("/flaky").await;
    assert_eq!(
        (failed.status, failed.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    );
    assert_eq!(failed.cache(), "miss");

    // Within its lifetime a 5xx is not even asked for; the upstream recovers.
    upstream.failing.store(false, Ordering::SeqCst);
    assert_eq!(app.get("/flaky").await.body, "flaky v1");
    let hit = app.get("/flaky").await;
    assert_eq!((hit.body.as_str(), hit.cache()), ("flaky v1", "hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_refreshes_behind_and_never_serves_an_invalidated_response(
) {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let lifetime = Duration::from_millis(200);
    let revalidate = |builder: ResponseCacheBuilder| {
        builder
            .lifetime(lifetime)
            .stale_while_revalidate(Duration::from_secs(600))
    };
    let app = App::start(
        &redis.url(),
        &unique_namespace("swr"),
        &upstream,
        revalidate,
    )
    .await;

    assert_eq!(app.get("/books/6").await.body, "book 6 v1");
    outlive(lifetime).await;
    upstream.bump(6); // the database changed, and no one invalidated
    let served = app.get("/books/6").await;
    assert_eq!(
        (served.body.as_str(), served.cache()),
        ("book 6 v1", "stale")
    );
    wait_until("the refresh ran", || upstream.calls("book") == 2).await;
    let mut refreshed = app.get("/books/6").await;
    while refreshed.body != "book 6 v2" {
        // The refresh ran; its write lands a moment later.
        assert_eq!(refreshed.body, "book 6 v1");
        tokio::time::sleep(Duration::from_millis(5)).await;
        refreshed = app.get("/books/6").await;
    }
    assert_eq!(refreshed.cache(), "hit");

    outlive(lifetime).await;
    app.put("/books/6").await; // v3, book:6 invalidated
    let after = app.get("/books/6").await;
    assert_eq!((after.body.as_str(), after.cache()), ("book 6 v3", "miss"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_of_a_handler_tag_during_the_upstream_call_makes_the_response_miss() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = Arc::new(App::start(&redis.url(), &unique_namespace("mid"), &upstream, same).await);

    // First request: the layer learns the handler's tags; the response is not stored.
    upstream.open(1);
    let first = app.get("/held/shelf").await;
    assert_eq!(first.body, "shelf: book 1 v1, book 2 v1");
    // Second request: its tags' versions are read before it goes upstream; the handler reads
    // its data and is held; a write invalidates book:2 (a tag only the handler names).
    let held = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.get("/held/shelf").await })
    };
    wait_until("the second request is upstream", || {
        upstream.arrived.load(Ordering::SeqCst) == 2
    })
    .await;
    upstream.bump(2);
    assert!(app.cache.invalidate_async(["book:2"]).await);
    upstream.open(1);
    assert_eq!(held.await.unwrap().body, "shelf: book 1 v1, book 2 v1");
    // What it stored was stamped before the invalidation: it misses.
    upstream.open(1);
    let next = app.get("/held/shelf").await;
    assert_eq!(
        (next.body.as_str(), next.cache()),
        ("shelf: book 1 v1, book 2 v2", "miss")
    );
    assert_eq!(upstream.calls("held-shelf"), 3);
    let hit = app.get("/held/shelf").await;
    assert_eq!(
        (hit.body.as_str(), hit.cache()),
        ("shelf: book 1 v1, book 2 v2", "hit")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_tags_from_the_header_are_used_and_never_reach_the_client() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("header"), &upstream, same).await;

    for _ in 0..3 {
        let reply = app.get("/header-shelf").await;
        assert!(!reply.headers.contains_key("surrogate-key"));
    }
    assert_eq!(upstream.calls("header-shelf"), 2, "learned, then stored");
    assert!(app.cache.invalidate_async(["book:1"]).await);
    let reply = app.get("/header-shelf").await;
    assert_eq!(reply.cache(), "miss");
    assert_eq!(upstream.calls("header-shelf"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_requests_with_credentials_pass_through() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("pass"), &upstream, same).await;

    assert_eq!(app.put("/books/8").await.cache(), "pass");
    app.get("/books/8").await;
    let private = app
        .get_with("/books/8", &[("authorization", "Bearer x")])
        .await;
    assert_eq!(
        (private.body.as_str(), private.cache()),
        ("book 8 v2", "pass")
    );
    assert_eq!(upstream.calls("book"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_is_down_every_request_is_answered_by_the_upstream() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::new();
    let app = App::start(&redis.url(), &unique_namespace("down"), &upstream, same).await;
    assert_eq!(app.get("/books/10").await.cache(), "miss");
    redis.kill();
    for round in 1..=3 {
        let reply = app.get("/books/10").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "book 10 v1")
        );
        assert_eq!(upstream.calls("book"), 1 + round);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_near_cache_a_write_is_seen_at_once_here_and_once_redis_tells_elsewhere() {
    let redis = RedisServer::start();
    let namespace = unique_namespace("near");
    let upstream = Upstream::new();
    let near_cache = || {
        rtc::TaggedCache::builder()
            .url(redis.url())
            .namespace(&namespace)
            .near_cache(1_000)
            .build()
            .unwrap()
    };
    let a = App::start_with(near_cache(), &upstream, same).await;
    let b = App::start_with(near_cache(), &upstream, same).await;
    wait_until("tracking is on", || {
        a.cache.near_cache_active() && b.cache.near_cache_active()
    })
    .await;

    assert_eq!(a.get("/books/11").await.body, "book 11 v1");
    // Read until answered from memory on both instances.
    for app in [&a, &b] {
        let near_hits = app.cache.stats().near_hits;
        let mut reply = app.get("/books/11").await;
        for _ in 0..1_000 {
            if app.cache.stats().near_hits > near_hits {
                break;
            }
            assert_eq!((reply.body.as_str(), reply.cache()), ("book 11 v1", "hit"));
            reply = app.get("/books/11").await;
        }
        assert!(
            app.cache.stats().near_hits > near_hits,
            "answered from memory"
        );
        assert_eq!((reply.body.as_str(), reply.cache()), ("book 11 v1", "hit"));
    }
    assert_eq!(upstream.calls("book"), 1);

    a.put("/books/11").await;
    let here = a.get("/books/11").await;
    assert_eq!((here.body.as_str(), here.cache()), ("book 11 v2", "miss"));
    // The other instance: the old page until Redis's message arrives, never after.
    let mut elsewhere = b.get("/books/11").await;
    let started = std::time::Instant::now();
    while elsewhere.body != "book 11 v2" {
        assert_eq!(elsewhere.body, "book 11 v1");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Redis's message never came"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        elsewhere = b.get("/books/11").await;
    }
    for _ in 0..20 {
        assert_eq!(b.get("/books/11").await.body, "book 11 v2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifetime_a_response_gives_itself_is_followed_when_asked() {
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let follow = |builder: ResponseCacheBuilder| builder.lifetime_from_cache_control(true);
    let app = App::start(
        &redis.url(),
        &unique_namespace("max-age"),
        &upstream,
        follow,
    )
    .await;

    // The first response teaches the layer its lifetime (shorter than the layer's 60 s): it is
    // not stored for longer than it allows, so not at all; the second is stored for 1 s.
    assert_eq!(app.get("/short").await.cache(), "miss");
    assert_eq!(app.get("/short").await.cache(), "miss");
    assert_eq!(app.get("/short").await.cache(), "hit");
    assert_eq!(upstream.calls("short"), 2);
    outlive(Duration::from_secs(1)).await;
    assert_eq!(app.get("/short").await.cache(), "miss");
    assert_eq!(upstream.calls("short"), 3);

    // Not asked: the layer's lifetime, whatever the response says.
    let other = App::start(&redis.url(), &unique_namespace("fixed"), &upstream, same).await;
    other.get("/short").await;
    outlive(Duration::from_secs(1)).await;
    assert_eq!(other.get("/short").await.cache(), "hit");
    assert_eq!(upstream.calls("short"), 4);
}
