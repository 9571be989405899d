//! The engine's behaviour, on a real Redis and on the in-memory backend alike.

mod behaviours;

use std::time::Duration;

use behaviours::Fixture;
use rtc::{Lifetime, MissKind, TaggedCache, NO_TAGS};

#[test]
fn every_behaviour_on_redis_through_the_applications_client() {
    behaviours::run_all(Fixture::redis_client);
}

#[test]
fn every_behaviour_on_redis() {
    behaviours::run_all(Fixture::redis);
}

#[test]
fn every_behaviour_in_memory() {
    behaviours::run_all(Fixture::memory);
}

#[test]
fn a_disabled_cache_misses_and_stores_nothing() {
    let cache = TaggedCache::builder().disabled(true).build().unwrap();
    assert!(!cache.set("k", &1, ["t"], Lifetime::Default));
    assert_eq!(cache.get::<i32>("k", ["t"]), Err(MissKind::Absent.into()));
    assert!(!cache.delete("k", ["t"]));
    assert!(!cache.invalidate(["t"]));
    assert!(!cache.invalidate_all());
}

#[test]
fn the_in_memory_backend_frees_expired_entries() {
    let cache = TaggedCache::builder().in_memory().build().unwrap();
    for i in 0..100 {
        cache.set(format!("k{i}"), &i, NO_TAGS, Duration::from_millis(20));
    }
    assert_eq!(cache.local_entry_count(), Some(100));
    std::thread::sleep(Duration::from_millis(50));
    // Growing past the sweep threshold frees the expired entries by itself.
    for i in 0..2000 {
        cache.set(format!("long{i}"), &i, NO_TAGS, Duration::from_secs(60));
    }
    assert_eq!(cache.local_entry_count(), Some(2000));
    cache.set("brief", &0, NO_TAGS, Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(5));
    cache.purge_expired();
    assert_eq!(cache.local_entry_count(), Some(2000));
}
