//! With the `metrics` feature, every response is counted by route and cache status.

mod support;

use axum::extract::MatchedPath;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rtc_tests::{unique_namespace, RedisServer};
use support::{App, Upstream};

/// Every `rtc_http_responses_total` recorded since the last snapshot (a snapshot resets the
/// counters): `(route, cache, count)`.
fn responses(snapshotter: &Snapshotter) -> Vec<(String, String, u64)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "rtc_http_responses_total")
        .map(|(key, .., value)| {
            let label = |name: &str| {
                let found = key.key().labels().find(|label| label.key() == name);
                found
                    .map(|label| label.value().to_owned())
                    .unwrap_or_default()
            };
            let count = match value {
                DebugValue::Counter(count) => count,
                _ => 0,
            };
            (label("route"), label("cache"), count)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_counted_per_route_and_cache_status() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let redis = RedisServer::start();
    let upstream = Upstream::new();
    let named = |builder: rtc_http::ResponseCacheBuilder| {
        builder.route_name(|request| {
            request
                .extensions
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str)
                .to_owned()
        })
    };
    let app = App::start(&redis.url(), &unique_namespace("metrics"), &upstream, named).await;

    app.get("/books/1").await;
    app.get("/books/1").await;
    app.get("/books/2").await;
    app.put("/books/2").await;
    app.get("/no-store").await;
    app.get("/no-store").await;

    let mut counted = responses(&snapshotter);
    counted.sort();
    let expected = [
        ("/books/{id}", "hit", 1),
        ("/books/{id}", "miss", 2),
        ("/books/{id}", "pass", 1),
        ("/no-store", "miss", 1),
        ("/no-store", "pass", 1),
    ]
    .map(|(route, cache, count)| (route.to_owned(), cache.to_owned(), count));
    assert_eq!(counted, expected);
}
