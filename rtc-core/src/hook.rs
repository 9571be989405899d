//! The cache hook: a user function called after every decorated call, hit or miss.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// What happened in one call of a `#[cached]` function, handed to the cache hook.
///
/// ```
/// use rtc::{CacheInfo, TaggedCache};
///
/// let cache = TaggedCache::builder()
///     .in_memory()
///     .cache_hook(|key: &str, tags: &[String], info: &CacheInfo, _userdata| {
///         println!("{}: hit={} in {:?} ({key}, {tags:?})", info.function_name, info.hit, info.elapsed);
///     })
///     .build()
///     .unwrap();
/// # let _ = cache;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// The source file of the decorated function (`file!()`).
    pub file: &'static str,
    /// The self type of the `impl` block the function is in, as written (`Repo<T>`); `""` for
    /// a function outside any `impl` block.
    pub impl_type: &'static str,
    /// The decorated function's name.
    pub function_name: &'static str,
    /// The arguments that make the key, as a JSON array (`""` when they could not be serialized).
    pub function_args: String,
    /// True for a method (a function with a `self` receiver).
    pub is_method: bool,
    /// True when the value came from the cache.
    pub hit: bool,
    /// The whole call, hook excluded.
    pub elapsed: Duration,
    /// The function's own body; zero on a hit.
    pub decorated_elapsed: Duration,
    /// Time spent waiting for another caller's computation (`lock = true`); zero when the
    /// call did not wait.
    pub lock_waited: Duration,
    /// `lock = true` and the value was in the cache at once.
    pub lock_full_hit: bool,
    /// `lock = true`, this caller took the lock, and still had to compute.
    pub lock_full_miss: bool,
    /// Size of the value as stored, compressed if it was (read on a hit, written on a miss);
    /// zero when nothing was.
    pub serialized_size: usize,
    /// True when the value returned is past its lifetime (its tags are all current):
    /// `stale_while_revalidate` returned it at once (`hit` is true), or `stale_if_error` /
    /// `stale_if_slow` returned it instead of what the function gave (`hit` is false).
    pub stale: bool,
}

/// The signature of a cache hook: key, tags, what happened, and the decorator's `hook_userdata`.
pub type HookFn =
    dyn Fn(&str, &[String], &CacheInfo, Option<&(dyn Any + Send + Sync)>) + Send + Sync + 'static;

/// A shared cache hook.
#[derive(Clone)]
pub(crate) struct Hook(pub Arc<HookFn>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook(..)")
    }
}

impl Hook {
    /// Calls the hook; a panic inside it is caught and logged, never passed to the caller.
    pub(crate) fn call(
        &self,
        key: &str,
        tags: &[String],
        info: &CacheInfo,
        userdata: Option<&(dyn Any + Send + Sync)>,
    ) {
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.0)(key, tags, info, userdata)));
        if outcome.is_err() {
            tracing::warn!(
                function = info.function_name,
                "rtc: the cache hook panicked; the call's value is returned all the same"
            );
        }
    }
}
