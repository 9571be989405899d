//! The engine's behaviours, each a function of the backend under test, so that the same suite
//! runs on Redis, in memory, on a Redis Cluster and through Redis Sentinel.

use std::time::{Duration, Instant};

use rtc::{Lifetime, MissKind, TaggedCache, NO_TAGS};

use rtc_tests::{unique_namespace, RedisServer};
use serde::{Deserialize, Serialize};

/// Runs every behaviour against the backend `fixture` makes, naming each before it runs.
pub fn run_all(fixture: impl Fn() -> Fixture) {
    for (name, check) in ALL.iter().chain(batch::ALL).chain(get_with::ALL) {
        eprintln!("behaviour: {name}");
        check(&fixture());
    }
}

/// A backend under test; keeps its Redis server alive as long as the test runs.
pub struct Fixture {
    _server: Option<RedisServer>,
    builder: Box<dyn Fn(&str) -> rtc::TaggedCacheBuilder>,
}

#[allow(dead_code)] // each test binary uses the backends it tests
impl Fixture {
    pub fn redis() -> Self {
        let server = RedisServer::start();
        let url = server.url();
        Self {
            _server: Some(server),
            builder: Box::new(move |namespace| {
                TaggedCache::builder().namespace(namespace).url(&url)
            }),
        }
    }

    /// Redis through a `redis::Client` the application made, on database 3.
    pub fn redis_client() -> Self {
        let server = RedisServer::start();
        let client =
            rtc::redis::Client::open(format!("redis://127.0.0.1:{}/3", server.port())).unwrap();
        Self {
            _server: Some(server),
            builder: Box::new(move |namespace| {
                TaggedCache::builder().namespace(namespace).client(&client)
            }),
        }
    }

    pub fn memory() -> Self {
        Self {
            _server: None,
            builder: Box::new(|namespace| TaggedCache::builder().namespace(namespace).in_memory()),
        }
    }

    pub fn cluster(cluster: &rtc_tests::cluster::RedisCluster) -> Self {
        let urls = cluster.urls();
        Self {
            _server: None,
            builder: Box::new(move |namespace| {
                TaggedCache::builder()
                    .namespace(namespace)
                    .cluster_urls(urls.clone())
            }),
        }
    }

    pub fn cluster_client(cluster: &rtc_tests::cluster::RedisCluster) -> Self {
        let client = rtc::redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
        Self {
            _server: None,
            builder: Box::new(move |namespace| {
                TaggedCache::builder()
                    .namespace(namespace)
                    .cluster_client(&client)
            }),
        }
    }

    pub fn sentinel(deployment: &rtc_tests::sentinel::RedisSentinel) -> Self {
        let urls = deployment.urls();
        Self {
            _server: None,
            builder: Box::new(move |namespace| {
                TaggedCache::builder()
                    .namespace(namespace)
                    .sentinel(urls.clone(), rtc_tests::sentinel::SERVICE)
            }),
        }
    }

    fn cache(&self) -> TaggedCache {
        self.cache_in(&unique_namespace("engine"))
    }

    fn cache_in(&self, namespace: &str) -> TaggedCache {
        (self.builder)(namespace).build().expect("valid settings")
    }

    fn cache_with(
        &self,
        adjust: impl FnOnce(rtc::TaggedCacheBuilder) -> rtc::TaggedCacheBuilder,
    ) -> TaggedCache {
        adjust((self.builder)(&unique_namespace("engine")))
            .build()
            .expect("valid settings")
    }
}

/// How many rounds [`in_time`] tries.
const ROUNDS: u32 = 10;

/// Runs `round(0)`, `round(1)`, ... until one returns `Some`, and returns that.
///
/// A read that returned less than an entry's lifetime after its write was sent must hit; a
/// loaded machine can stall a thread past a short lifetime, though. So a round checks the clock
/// before each positive assertion and returns `None` when it was too late: that round proves
/// nothing either way, and the next one tries again with keys of its own. Negative assertions
/// (a miss after the lifetime) hold whenever they are made.
///
/// # Panics
/// When no round of [`ROUNDS`] was in time.
fn in_time<T>(what: &str, mut round: impl FnMut(u32) -> Option<T>) -> T {
    (0..ROUNDS).find_map(&mut round).unwrap_or_else(|| {
        panic!("{what}: none of {ROUNDS} rounds read in time; the machine is too busy")
    })
}

/// Sleeps until `lifetime` (and a margin for the server's millisecond clock) has passed since
/// `written`, an instant after the write returned.
fn sleep_past(written: Instant, lifetime: Duration) {
    let expired = written + lifetime + Duration::from_millis(50);
    std::thread::sleep(expired.saturating_duration_since(Instant::now()));
}

/// Declares each behaviour as a function, and lists them all in [`ALL`].
macro_rules! behaviours {
    ($(fn $name:ident($fixture:ident) $body:block)*) => {
        $(pub fn $name($fixture: &Fixture) $body)*

        /// Every behaviour, by name.
        pub const ALL: &[(&str, fn(&Fixture))] = &[$((stringify!($name), $name)),*];
    };
}

mod batch;
mod get_with;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn ada() -> User {
    User {
        id: 42,
        name: "Ada".into(),
    }
}

behaviours! {
    fn set_get_and_delete_with_tags(fixture) {
        let cache = fixture.cache();
        assert!(cache.set("user", &ada(), ["user:42", "users"], Lifetime::Default));
        assert_eq!(cache.get::<User>("user", ["user:42", "users"]), Ok(ada()));
        assert_eq!(cache.get::<User>("user", ["users", "user:42", "users"]), Ok(ada()), "tag order and repeats do not matter");
        assert!(cache.delete("user", ["users", "user:42"]));
        assert_eq!(cache.get::<User>("user", ["user:42", "users"]), Err(MissKind::Absent.into()));
        assert!(!cache.delete("user", ["users", "user:42"]), "nothing left to delete");
    }

    fn invalidating_a_tag_misses_exactly_the_entries_that_carry_it(fixture) {
        let cache = fixture.cache();
        cache.set("a", &1, ["red"], Lifetime::Default);
        cache.set("b", &2, ["red", "blue"], Lifetime::Default);
        cache.set("c", &3, ["blue"], Lifetime::Default);
        cache.set("d", &4, NO_TAGS, Lifetime::Default);
        assert!(cache.invalidate(["red"]));
        assert_eq!(cache.get::<i32>("a", ["red"]), Err(MissKind::Absent.into()));
        assert_eq!(cache.get::<i32>("b", ["red", "blue"]), Err(MissKind::Absent.into()));
        assert_eq!(cache.get::<i32>("c", ["blue"]), Ok(3));
        assert_eq!(cache.get::<i32>("d", NO_TAGS), Ok(4));
        // A new write after the invalidation is fresh again.
        cache.set("a", &10, ["red"], Lifetime::Default);
        assert_eq!(cache.get::<i32>("a", ["red"]), Ok(10));
    }

    fn invalidating_several_tags_at_once(fixture) {
        let cache = fixture.cache();
        let owned = vec!["x".to_string(), "y".to_string()];
        cache.set("x", &1, ["x"], Lifetime::Default);
        cache.set("y", &2, ["y"], Lifetime::Default);
        cache.set("z", &3, ["z"], Lifetime::Default);
        assert!(cache.invalidate(&owned));
        assert!(cache.get::<i32>("x", ["x"]).is_err());
        assert!(cache.get::<i32>("y", ["y"]).is_err());
        assert_eq!(cache.get::<i32>("z", ["z"]), Ok(3));
    }

    fn invalidate_all_misses_every_entry_of_the_namespace_only(fixture) {
        let namespace = unique_namespace("all");
        let cache = fixture.cache_in(&namespace);
        let other = fixture.cache();
        cache.set("a", &1, ["t"], Lifetime::Default);
        cache.set("b", &2, NO_TAGS, Lifetime::Default);
        other.set("a", &1, ["t"], Lifetime::Default);
        assert!(cache.invalidate_all());
        assert!(cache.get::<i32>("a", ["t"]).is_err());
        assert!(cache.get::<i32>("b", NO_TAGS).is_err());
        assert_eq!(other.get::<i32>("a", ["t"]), Ok(1));
        cache.set("b", &3, NO_TAGS, Lifetime::Default);
        assert_eq!(cache.get::<i32>("b", NO_TAGS), Ok(3));
    }

    fn an_entry_is_identified_by_its_key_and_its_set_of_tags(fixture) {
        let cache = fixture.cache();
        cache.set("k", &"v1", ["a"], Lifetime::Default);
        cache.set("k", &"v2", ["b"], Lifetime::Default);
        cache.set("k", &"v3", NO_TAGS, Lifetime::Default);
        assert_eq!(cache.get::<String>("k", ["a"]).as_deref(), Ok("v1"));
        assert_eq!(cache.get::<String>("k", ["b"]).as_deref(), Ok("v2"));
        assert_eq!(cache.get::<String>("k", NO_TAGS).as_deref(), Ok("v3"));
        assert!(cache.get::<String>("k", ["a", "b"]).is_err());
        cache.invalidate(["a"]);
        assert!(cache.get::<String>("k", ["a"]).is_err());
        assert_eq!(cache.get::<String>("k", ["b"]).as_deref(), Ok("v2"));
    }

    fn entries_expire_after_their_lifetime(fixture) {
        let (short, default) = (Duration::from_millis(100), Duration::from_millis(300));
        let cache = fixture.cache_with(|b| b.default_lifetime(default));
        let written = in_time("entries read within their lifetime hit", |round| {
            let started = Instant::now();
            cache.set(format!("default{round}"), &1, NO_TAGS, Lifetime::Default);
            cache.set(format!("short{round}"), &2, NO_TAGS, short);
            cache.set(format!("forever{round}"), &3, NO_TAGS, Lifetime::Never);
            let got = cache.get::<i32>(format!("short{round}"), NO_TAGS);
            let written = Instant::now();
            if started.elapsed() >= short {
                return None;
            }
            assert_eq!(got, Ok(2), "within its own lifetime");
            sleep_past(written, short);
            assert!(cache.get::<i32>(format!("short{round}"), NO_TAGS).is_err(), "past its own lifetime");
            let got = cache.get::<i32>(format!("default{round}"), NO_TAGS);
            if started.elapsed() >= default {
                return None;
            }
            assert_eq!(got, Ok(1), "within the default lifetime");
            Some((round, written))
        });
        let (round, written) = written;
        sleep_past(written, default);
        assert!(cache.get::<i32>(format!("default{round}"), NO_TAGS).is_err(), "past the default lifetime");
        assert_eq!(cache.get::<i32>(format!("forever{round}"), NO_TAGS), Ok(3));
    }

    fn an_entry_whose_tag_expired_misses(fixture) {
        let tag_lifetime = Duration::from_millis(150);
        let cache = fixture.cache_with(|b| {
            b.lifetime_for_tags(tag_lifetime)
                .default_lifetime(Duration::from_secs(60))
        });
        in_time("entries read within their tag's lifetime hit", |round| {
            // A tag of its own per round: a tag left by a round that came too late would expire
            // early for the next one.
            let tag = format!("short-lived-{round}");
            let started = Instant::now();
            cache.set("k", &1, [&tag], Lifetime::Default);
            // Another entry read with the same tag, still kept (near or in memory) when the
            // tag expires: what it learned of the tag's version must not outlive the tag.
            cache.set("other", &0, [&tag], Lifetime::Default);
            let other = cache.get::<i32>("other", [&tag]);
            let got = cache.get::<i32>("k", [&tag]);
            let written = Instant::now();
            if started.elapsed() >= tag_lifetime {
                return None;
            }
            assert_eq!((got, other), (Ok(1), Ok(0)), "within the tag's lifetime");
            sleep_past(written, tag_lifetime);
            assert!(cache.get::<i32>("k", [&tag]).is_err(), "the tag expired, so the entry must miss");
            let started = Instant::now();
            cache.set("k", &2, [&tag], Lifetime::Default);
            let got = cache.get::<i32>("k", [&tag]);
            if started.elapsed() >= tag_lifetime {
                return None;
            }
            assert_eq!(got, Ok(2), "writing again recreates the tag");
            Some(())
        });
    }

    fn namespaces_do_not_see_each_other(fixture) {
        let one = fixture.cache();
        let two = fixture.cache();
        one.set("k", &1, ["t"], Lifetime::Default);
        assert!(two.get::<i32>("k", ["t"]).is_err());
        two.set("k", &2, ["t"], Lifetime::Default);
        two.invalidate(["t"]);
        assert_eq!(one.get::<i32>("k", ["t"]), Ok(1));
    }

    fn hostile_keys_and_tags_are_just_strings(fixture) {
        let cache = fixture.cache();
        let long = "x".repeat(10 * 1024);
        let hostile = ["", ":", "*", "a:b:*", "line\nbreak", "rtc:t:00", "\u{0}nul", "ключ", long.as_str()];
        for (i, key) in hostile.iter().enumerate() {
            assert!(cache.set(*key, &i, [*key, "common"], Lifetime::Default), "set {key:?}");
        }
        for (i, key) in hostile.iter().enumerate() {
            assert_eq!(cache.get::<usize>(*key, [*key, "common"]), Ok(i), "get {key:?}");
        }
        cache.invalidate([":"]);
        assert!(cache.get::<usize>(":", [":", "common"]).is_err());
        assert_eq!(cache.get::<usize>("*", ["*", "common"]), Ok(2));
    }

    fn a_value_read_as_another_type_is_an_undecodable_miss(fixture) {
        let cache = fixture.cache();
        cache.set("user", &ada(), NO_TAGS, Lifetime::Default);
        assert_eq!(cache.get::<Vec<u8>>("user", NO_TAGS), Err(MissKind::Undecodable.into()));
        assert_eq!(cache.get::<User>("user", NO_TAGS), Ok(ada()));
    }

    fn a_value_that_cannot_be_serialized_is_not_stored(fixture) {
        let cache = fixture.cache();
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1); // JSON maps need string keys
        assert!(!cache.set("map", &map, NO_TAGS, Lifetime::Default));
        assert!(cache.get::<i32>("map", NO_TAGS).is_err());
    }

    fn the_async_twins_behave_like_the_sync_calls(fixture) {
        let cache = fixture.cache();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..200u32 {
                let cache = cache.clone();
                tasks.push(tokio::spawn(async move {
                    let key = format!("k{i}");
                    let tag = format!("t{}", i % 10);
                    assert!(cache.set_async(&key, &i, [&tag, "all"], Lifetime::Default).await);
                    assert_eq!(cache.get_async::<u32>(&key, [&tag, "all"]).await, Ok(i));
                }));
            }
            for task in tasks {
                task.await.expect("no task panics");
            }
            assert!(cache.invalidate_async(["t3"]).await);
            assert!(cache.get_async::<u32>("k3", ["t3", "all"]).await.is_err());
            assert_eq!(cache.get_async::<u32>("k4", ["t4", "all"]).await, Ok(4));
            assert!(cache.delete_async("k4", ["t4", "all"]).await);
            assert!(cache.get_async::<u32>("k4", ["t4", "all"]).await.is_err());
            assert!(cache.invalidate_all_async().await);
            assert!(cache.get_async::<u32>("k5", ["t5", "all"]).await.is_err());
        });
        // The same cache keeps working from a second, current-thread runtime.
        let second = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        second.block_on(async {
            assert!(cache.set_async("after", &1, NO_TAGS, Lifetime::Default).await);
            assert_eq!(cache.get_async::<i32>("after", NO_TAGS).await, Ok(1));
        });
    }
}
