//! Before `rtc::set_global`, functions without `cache = ...` run uncached (this binary never
//! sets the global cache).
#![deny(warnings)]

use std::sync::atomic::{AtomicUsize, Ordering};

use rtc::cached;

static DOUBLE: AtomicUsize = AtomicUsize::new(0);

#[cached(tags = ["doubles"])]
fn double(x: u64) -> u64 {
    DOUBLE.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[test]
fn without_a_global_cache_every_call_runs_the_body() {
    assert!(rtc::global().is_none());
    assert_eq!(double(1), 2);
    assert_eq!(double(1), 2);
    assert_eq!(refresh_double(1), 2);
    assert_eq!(DOUBLE.load(Ordering::SeqCst), 3);
    assert!(!invalidate_double(1));
    assert!(!invalidate_all_double());
}
