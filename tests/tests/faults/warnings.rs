//! An outage is reported, once in a while, not once per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rtc::{Lifetime, MissKind, TaggedCache};
use rtc_tests::staleness::tag;
use rtc_tests::statics::install;
use rtc_tests::{free_port, warnings, RedisServer};

use crate::support::{cache_on, SOCKET_TIMEOUT};

static KILLED: OnceLock<TaggedCache> = OnceLock::new();

/// At most this many warnings for 1,000 failing calls (one per kind per 10 s is the design).
const FEW: usize = 5;

#[test]
fn a_wrong_port_gives_a_few_warnings_that_say_what_happened() {
    let cache = TaggedCache::builder()
        .url(format!("redis://127.0.0.1:{}/0", free_port()))
        .connect_timeout(SOCKET_TIMEOUT)
        .build()
        .unwrap();
    let (_, logged) = warnings::capture(|| {
        for i in 0..1000 {
            assert_eq!(
                cache.get::<u64>("k", [tag(i)]),
                Err(MissKind::Unavailable.into())
            );
            assert!(!cache.set("k", &i, [tag(i)], Lifetime::Default));
            assert!(!cache.invalidate([tag(i)]));
        }
    });
    assert!(
        (1..=FEW).contains(&logged.len()),
        "3,000 failing calls: {logged:#?}"
    );
    assert!(
        logged[0].message.contains("could not be reached"),
        "{}",
        logged[0]
    );
    assert!(cache.stats().errors >= 1);
}

#[rtc::cached(tags = [tag(item)], cache = KILLED.get().unwrap(), skip(runs))]
fn killed_load(runs: &AtomicU64, item: u64) -> u64 {
    runs.fetch_add(1, Ordering::Relaxed);
    item * 2
}

#[test]
fn a_killed_server_gives_a_few_warnings_for_many_decorated_calls() {
    let mut server = RedisServer::start();
    install(&KILLED, cache_on(&server, "killed-warnings"));
    let runs = AtomicU64::new(0);
    assert_eq!(killed_load(&runs, 1), 2);
    server.kill();
    let (_, logged) = warnings::capture(|| {
        for i in 0..1000 {
            assert_eq!(killed_load(&runs, i % 10), (i % 10) * 2);
        }
    });
    assert!(
        (1..=FEW).contains(&logged.len()),
        "1,000 calls on a dead server: {logged:#?}"
    );
    assert_eq!(
        runs.load(Ordering::Relaxed),
        1001,
        "every call computed its value"
    );
}
