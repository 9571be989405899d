//! Functions without `cache = ...` use the cache given to `rtc::set_global`.
#![deny(warnings)]

use std::sync::atomic::{AtomicUsize, Ordering};

use rtc::{cached, TaggedCache};

static TRIPLE: AtomicUsize = AtomicUsize::new(0);

#[cached(tags = [format!("triple:{x}")])]
fn triple(x: u64) -> u64 {
    TRIPLE.fetch_add(1, Ordering::SeqCst);
    x * 3
}

fn memory_cache() -> TaggedCache {
    TaggedCache::builder().in_memory().build().unwrap()
}

/// One test: the global cache is the process's, set once.
#[test]
fn once_set_the_global_cache_serves_every_decorated_function() {
    rtc::set_global(memory_cache()).unwrap();
    assert!(rtc::set_global(memory_cache()).is_err(), "set only once");

    assert_eq!(triple(2), 6);
    assert_eq!(triple(2), 6);
    assert_eq!(TRIPLE.load(Ordering::SeqCst), 1);

    assert!(rtc::global().unwrap().invalidate(["triple:2"]));
    assert_eq!(triple(2), 6);
    assert_eq!(TRIPLE.load(Ordering::SeqCst), 2);
}
