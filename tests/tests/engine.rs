//! The engine's behaviour, on a real Redis and on the in-memory backend alike.

use std::time::Duration;

use rtc::{CacheMiss, TaggedCache, NO_TAGS};
use rtc_tests::{unique_namespace, RedisServer};
use serde::{Deserialize, Serialize};

/// A backend under test; keeps its Redis server alive as long as the test runs.
struct Fixture {
    _server: Option<RedisServer>,
    builder: Box<dyn Fn(&str) -> rtc::TaggedCacheBuilder>,
}

impl Fixture {
    fn redis() -> Self {
        let server = RedisServer::start();
        let url = server.url();
        Self {
            _server: Some(server),
            builder: Box::new(move |namespace| {
                TaggedCache::builder().namespace(namespace).url(&url)
            }),
        }
    }

    fn memory() -> Self {
        Self {
            _server: None,
            builder: Box::new(|namespace| {
                TaggedCache::builder()
                    .namespace(namespace)
                    .in_local_memory(true)
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

/// Runs one behaviour test against Redis and against the in-memory backend.
macro_rules! on_every_backend {
    ($(fn $name:ident($fixture:ident) $body:block)*) => {$(
        mod $name {
            use super::*;
            fn check($fixture: &Fixture) $body
            #[test]
            fn on_redis() { check(&Fixture::redis()) }
            #[test]
            fn in_memory() { check(&Fixture::memory()) }
        }
    )*};
}

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

on_every_backend! {
    fn set_get_and_delete_with_tags(fixture) {
        let cache = fixture.cache();
        assert!(cache.set("user", &ada(), ["user:42", "users"], None));
        assert_eq!(cache.get::<User>("user", ["user:42", "users"]), Ok(ada()));
        assert_eq!(cache.get::<User>("user", ["users", "user:42", "users"]), Ok(ada()), "tag order and repeats do not matter");
        assert!(cache.delete("user", ["users", "user:42"]));
        assert_eq!(cache.get::<User>("user", ["user:42", "users"]), Err(CacheMiss));
        assert!(!cache.delete("user", ["users", "user:42"]), "nothing left to delete");
    }

    fn invalidating_a_tag_misses_exactly_the_entries_that_carry_it(fixture) {
        let cache = fixture.cache();
        cache.set("a", &1, ["red"], None);
        cache.set("b", &2, ["red", "blue"], None);
        cache.set("c", &3, ["blue"], None);
        cache.set("d", &4, NO_TAGS, None);
        assert!(cache.invalidate(["red"]));
        assert_eq!(cache.get::<i32>("a", ["red"]), Err(CacheMiss));
        assert_eq!(cache.get::<i32>("b", ["red", "blue"]), Err(CacheMiss));
        assert_eq!(cache.get::<i32>("c", ["blue"]), Ok(3));
        assert_eq!(cache.get::<i32>("d", NO_TAGS), Ok(4));
        // A new write after the invalidation is fresh again.
        cache.set("a", &10, ["red"], None);
        assert_eq!(cache.get::<i32>("a", ["red"]), Ok(10));
    }

    fn invalidating_several_tags_at_once(fixture) {
        let cache = fixture.cache();
        let owned = vec!["x".to_string(), "y".to_string()];
        cache.set("x", &1, ["x"], None);
        cache.set("y", &2, ["y"], None);
        cache.set("z", &3, ["z"], None);
        assert!(cache.invalidate(&owned));
        assert!(cache.get::<i32>("x", ["x"]).is_err());
        assert!(cache.get::<i32>("y", ["y"]).is_err());
        assert_eq!(cache.get::<i32>("z", ["z"]), Ok(3));
    }

    fn invalidate_all_misses_every_entry_of_the_namespace_only(fixture) {
        let namespace = unique_namespace("all");
        let cache = fixture.cache_in(&namespace);
        let other = fixture.cache();
        cache.set("a", &1, ["t"], None);
        cache.set("b", &2, NO_TAGS, None);
        other.set("a", &1, ["t"], None);
        assert!(cache.invalidate_all());
        assert!(cache.get::<i32>("a", ["t"]).is_err());
        assert!(cache.get::<i32>("b", NO_TAGS).is_err());
        assert_eq!(other.get::<i32>("a", ["t"]), Ok(1));
        cache.set("b", &3, NO_TAGS, None);
        assert_eq!(cache.get::<i32>("b", NO_TAGS), Ok(3));
    }

    fn an_entry_is_identified_by_its_key_and_its_set_of_tags(fixture) {
        let cache = fixture.cache();
        cache.set("k", &"v1", ["a"], None);
        cache.set("k", &"v2", ["b"], None);
        cache.set("k", &"v3", NO_TAGS, None);
        assert_eq!(cache.get::<String>("k", ["a"]).as_deref(), Ok("v1"));
        assert_eq!(cache.get::<String>("k", ["b"]).as_deref(), Ok("v2"));
        assert_eq!(cache.get::<String>("k", NO_TAGS).as_deref(), Ok("v3"));
        assert!(cache.get::<String>("k", ["a", "b"]).is_err());
        cache.invalidate(["a"]);
        assert!(cache.get::<String>("k", ["a"]).is_err());
        assert_eq!(cache.get::<String>("k", ["b"]).as_deref(), Ok("v2"));
    }

    fn entries_expire_after_their_lifetime(fixture) {
        let cache = fixture.cache_with(|b| b.default_lifetime(Some(Duration::from_millis(300))));
        cache.set("default", &1, NO_TAGS, None);
        cache.set("short", &2, NO_TAGS, Some(Duration::from_millis(100)));
        cache.set("forever", &3, NO_TAGS, Some(Duration::ZERO));
        assert_eq!(cache.get::<i32>("short", NO_TAGS), Ok(2));
        std::thread::sleep(Duration::from_millis(150));
        assert!(cache.get::<i32>("short", NO_TAGS).is_err());
        assert_eq!(cache.get::<i32>("default", NO_TAGS), Ok(1));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get::<i32>("default", NO_TAGS).is_err());
        assert_eq!(cache.get::<i32>("forever", NO_TAGS), Ok(3));
    }

    fn an_entry_whose_tag_expired_misses(fixture) {
        let cache = fixture.cache_with(|b| {
            b.lifetime_for_tags(Some(Duration::from_millis(150)))
                .default_lifetime(Some(Duration::from_secs(60)))
        });
        cache.set("k", &1, ["short-lived"], None);
        assert_eq!(cache.get::<i32>("k", ["short-lived"]), Ok(1));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get::<i32>("k", ["short-lived"]).is_err(), "the tag expired, so the entry must miss");
        cache.set("k", &2, ["short-lived"], None);
        assert_eq!(cache.get::<i32>("k", ["short-lived"]), Ok(2), "writing again recreates the tag");
    }

    fn namespaces_do_not_see_each_other(fixture) {
        let one = fixture.cache();
        let two = fixture.cache();
        one.set("k", &1, ["t"], None);
        assert!(two.get::<i32>("k", ["t"]).is_err());
        two.set("k", &2, ["t"], None);
        two.invalidate(["t"]);
        assert_eq!(one.get::<i32>("k", ["t"]), Ok(1));
    }

    fn hostile_keys_and_tags_are_just_strings(fixture) {
        let cache = fixture.cache();
        let long = "x".repeat(10 * 1024);
        let hostile = ["", ":", "*", "a:b:*", "line\nbreak", "rtc:t:00", "\u{0}nul", "ключ", long.as_str()];
        for (i, key) in hostile.iter().enumerate() {
            assert!(cache.set(*key, &i, [*key, "common"], None), "set {key:?}");
        }
        for (i, key) in hostile.iter().enumerate() {
            assert_eq!(cache.get::<usize>(*key, [*key, "common"]), Ok(i), "get {key:?}");
        }
        cache.invalidate([":"]);
        assert!(cache.get::<usize>(":", [":", "common"]).is_err());
        assert_eq!(cache.get::<usize>("*", ["*", "common"]), Ok(2));
    }

    fn a_value_read_as_another_type_is_a_miss(fixture) {
        let cache = fixture.cache();
        cache.set("user", &ada(), NO_TAGS, None);
        assert_eq!(cache.get::<Vec<u8>>("user", NO_TAGS), Err(CacheMiss));
        assert_eq!(cache.get::<User>("user", NO_TAGS), Ok(ada()));
    }

    fn a_value_that_cannot_be_serialized_is_not_stored(fixture) {
        let cache = fixture.cache();
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1); // JSON maps need string keys
        assert!(!cache.set("map", &map, NO_TAGS, None));
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
                    assert!(cache.set_async(&key, &i, [&tag, "all"], None).await);
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
            assert!(cache.set_async("after", &1, NO_TAGS, None).await);
            assert_eq!(cache.get_async::<i32>("after", NO_TAGS).await, Ok(1));
        });
    }
}

#[test]
fn a_disabled_cache_misses_and_stores_nothing() {
    let cache = TaggedCache::builder().disabled(true).build().unwrap();
    assert!(!cache.set("k", &1, ["t"], None));
    assert_eq!(cache.get::<i32>("k", ["t"]), Err(CacheMiss));
    assert!(!cache.delete("k", ["t"]));
    assert!(!cache.invalidate(["t"]));
    assert!(!cache.invalidate_all());
}

#[test]
fn the_in_memory_backend_frees_expired_entries() {
    let cache = TaggedCache::builder()
        .in_local_memory(true)
        .build()
        .unwrap();
    for i in 0..100 {
        cache.set(
            format!("k{i}"),
            &i,
            NO_TAGS,
            Some(Duration::from_millis(20)),
        );
    }
    assert_eq!(cache.local_entry_count(), Some(100));
    std::thread::sleep(Duration::from_millis(50));
    // Growing past the sweep threshold frees the expired entries by itself.
    for i in 0..2000 {
        cache.set(
            format!("long{i}"),
            &i,
            NO_TAGS,
            Some(Duration::from_secs(60)),
        );
    }
    assert_eq!(cache.local_entry_count(), Some(2000));
    cache.set("brief", &0, NO_TAGS, Some(Duration::from_millis(1)));
    std::thread::sleep(Duration::from_millis(5));
    cache.purge_expired();
    assert_eq!(cache.local_entry_count(), Some(2000));
}
