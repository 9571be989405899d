//! Failures the in-memory backend and Redis report alike: an entry with more tags than the entry
//! format counts is refused with one warning and one counted error on both.

use std::time::Duration;

use rtc::{Lifetime, TaggedCache, MAX_TAGS};
use rtc_tests::{unique_namespace, warnings, RedisServer};

fn refuses_too_many_tags(cache: &TaggedCache, backend: &str) {
    let too_many: Vec<String> = (0..MAX_TAGS).map(|i| i.to_string()).collect();
    let (stored, logged) =
        warnings::capture(|| cache.set("too many", &1, &too_many, Lifetime::Default));
    assert!(!stored, "{backend}: refused");
    assert_eq!(cache.stats().errors, 1, "{backend}: one error counted");
    assert!(
        logged.len() == 1 && logged[0].message.contains("at most"),
        "{backend}: one warning saying why: {logged:#?}"
    );
    assert!(cache.get::<i32>("too many", &too_many).is_err());
}

#[test]
fn too_many_tags_are_refused_alike_in_memory_and_on_redis() {
    let memory = TaggedCache::builder().in_memory().build().unwrap();
    refuses_too_many_tags(&memory, "in memory");

    let server = RedisServer::start();
    let redis = TaggedCache::builder()
        .namespace(unique_namespace("tag-limit"))
        .url(server.url())
        .response_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    refuses_too_many_tags(&redis, "on Redis");
}
