//! The process-wide cache that `#[cached]` functions use when they name none.

use std::sync::OnceLock;

use crate::cache::TaggedCache;

static GLOBAL: OnceLock<TaggedCache> = OnceLock::new();

/// Makes `cache` the one `#[cached]` functions use when they have no `cache = ...` option.
/// Call it once, at start-up; decorated functions called before it run uncached (with one warning).
///
/// # Errors
/// Gives `cache` back when a global cache was already set; the first one stays.
///
/// ```
/// use rtc::TaggedCache;
///
/// let cache = TaggedCache::builder().in_memory().build().unwrap();
/// rtc::set_global(cache).unwrap();
/// assert!(rtc::global().is_some());
/// let again = TaggedCache::builder().in_memory().build().unwrap();
/// assert!(rtc::set_global(again).is_err());
/// ```
pub fn set_global(cache: TaggedCache) -> Result<(), TaggedCache> {
    GLOBAL.set(cache)
}

/// The cache set by [`set_global`], if any.
pub fn global() -> Option<&'static TaggedCache> {
    GLOBAL.get()
}
