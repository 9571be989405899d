//! `TaggedCache::ping` and `ping_async` against real servers: the round trip when Redis answers,
//! the reason when it does not, and `Duration::ZERO` at once for the caches without a server.
//! (On a cluster: tests/cluster.rs.)

use std::error::Error;
use std::time::Duration;

use rtc::{PingErrorKind, TaggedCache};
use rtc_tests::{free_port, RedisServer};

fn cache_at(url: &str) -> TaggedCache {
    TaggedCache::builder()
        .url(url)
        .response_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// How many `PING`s the server has run since it started.
fn pings_run(server: &RedisServer) -> u64 {
    server
        .info_field("commandstats", "cmdstat_ping")
        .and_then(|stats| {
            let calls = stats.split(',').next()?.strip_prefix("calls=")?;
            calls.parse().ok()
        })
        .unwrap_or(0)
}

#[test]
fn a_server_that_answers_gets_a_ping_and_its_round_trip_is_returned() {
    let server = RedisServer::start();
    let cache = cache_at(&server.url());
    let before = pings_run(&server);

    let sync = cache.ping();
    let in_async = runtime().block_on(cache.ping_async());

    assert!(sync.is_ok(), "{sync:?}");
    assert!(in_async.is_ok(), "{in_async:?}");
    assert!(sync.unwrap() > Duration::ZERO);
    assert!(pings_run(&server) >= before + 2);
}

#[test]
fn a_closed_port_is_unreachable_and_the_cause_is_the_source() {
    let cache = cache_at(&format!("redis://127.0.0.1:{}/0", free_port()));

    let errors = [
        cache.ping().unwrap_err(),
        runtime().block_on(cache.ping_async()).unwrap_err(),
    ];

    for error in errors {
        assert_eq!(error.kind(), PingErrorKind::Unreachable, "{error}");
        assert!(error.source().is_some(), "{error:?}");
    }
}

#[test]
fn a_ping_tries_even_while_calls_skip_redis_after_failures() {
    let server = RedisServer::start();
    let cache = cache_at(&server.url());
    server.freeze();
    // Three reads that time out, each after the pause the one before started: the back-off
    // now skips Redis for 400 ms.
    while cache.stats().errors < 3 {
        assert!(cache.get::<u32>("k", ["t"]).is_err());
        std::thread::sleep(Duration::from_millis(20));
    }
    server.thaw();

    let answered = cache.ping();

    assert!(answered.is_ok(), "{answered:?}");
}

#[test]
fn a_wrong_password_is_refused() {
    let server = RedisServer::start();
    server.config_set("requirepass", "right-password");
    let cache = cache_at(&format!("redis://:wrong@127.0.0.1:{}/0", server.port()));

    let error = cache.ping().unwrap_err();

    assert_eq!(
        error.kind(),
        PingErrorKind::Refused,
        "{error}: {:?}",
        error.source()
    );
}

#[test]
fn a_frozen_server_times_out() {
    let server = RedisServer::start();
    let cache = cache_at(&server.url());
    assert!(cache.ping().is_ok()); // connected before the freeze
    server.freeze();

    let error = cache.ping().unwrap_err();
    server.thaw();

    assert_eq!(
        error.kind(),
        PingErrorKind::TimedOut,
        "{error}: {:?}",
        error.source()
    );
}

#[test]
fn an_async_ping_outside_a_tokio_runtime_says_so() {
    let server = RedisServer::start();
    let cache = cache_at(&server.url());

    let error = futures_executor::block_on(cache.ping_async()).unwrap_err();

    assert_eq!(error.kind(), PingErrorKind::NoRuntime);
}

#[test]
fn the_in_memory_and_disabled_caches_answer_zero_at_once_even_outside_a_runtime() {
    let memory = TaggedCache::builder().in_memory().build().unwrap();
    let disabled = TaggedCache::builder()
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .disabled(true)
        .build()
        .unwrap();

    for cache in [memory, disabled] {
        assert_eq!(cache.ping().ok(), Some(Duration::ZERO));
        assert_eq!(
            futures_executor::block_on(cache.ping_async()).ok(),
            Some(Duration::ZERO)
        );
    }
}
