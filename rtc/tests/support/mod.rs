//! What the `#[cached]` behaviour tests share: an in-memory cache and a run counter.
#![allow(dead_code, reason = "each test binary uses its part")]

use std::sync::atomic::{AtomicUsize, Ordering};

use rtc::{Lifetime, TaggedCache, NO_TAGS};

/// An in-memory cache whose own tag already exists.
///
/// Every entry carries the cache's own tag. Created here, before the tests run in parallel: two
/// first writes racing to create it would leave one of them uncached, and a count off.
pub fn warm_memory_cache() -> TaggedCache {
    let cache = TaggedCache::builder().in_memory().build().unwrap();
    assert!(cache.set("warm-up", &(), NO_TAGS, Lifetime::Default));
    cache
}

/// How many times a body ran.
pub struct Calls(AtomicUsize);

impl Calls {
    pub const fn new() -> Self {
        Calls(AtomicUsize::new(0))
    }

    /// Counts one run; returns how many there were before it.
    pub fn count(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
