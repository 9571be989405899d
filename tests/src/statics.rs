//! Values a decorated function or a spawned task reaches for the whole test process.

use std::sync::OnceLock;

use rtc::TaggedCache;

/// Puts `cache` in the static a decorated function reads it from (`cache = SLOT.get().unwrap()`);
/// each slot is filled once per process.
///
/// # Panics
/// When the slot already holds a cache: two tests would share it.
pub fn install(slot: &'static OnceLock<TaggedCache>, cache: TaggedCache) -> &'static TaggedCache {
    assert!(slot.set(cache).is_ok(), "each cache is installed once");
    slot.get().expect("just installed")
}

/// A value the spawned tasks of an async test can borrow: it lives as long as the test process.
pub fn forever<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}
