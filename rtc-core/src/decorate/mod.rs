//! What `#[cached]` functions call at run time. Not public API: the macro's generated code is its
//! only user, through `rtc::__private`.
//!
//! A call's logic is the state machine in `protocol`; the methods of [`Call`] are its two
//! drivers, blocking and async, which alone wait for other callers and run the function.

use std::any::Any;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cache::TaggedCache;
use crate::engine::Single;
use crate::format::{self, EntryKeys};
use crate::hook::CacheInfo;
use crate::metrics;
use crate::tags::IntoTags;
use crate::warnings::WarnLimiter;

mod flights;
mod outcome;
mod protocol;

pub(crate) use self::flights::Flights;
use self::outcome::encoded;
pub use self::outcome::{AsIs, Codec, Outcome};
use self::protocol::{CallFlow, Mode, Yield};

static UNSET_GLOBAL_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));
static ARGUMENT_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// Where a decorated function lives.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// `file!()`.
    pub filepath: &'static str,
    /// `module_path!()`.
    pub module_path: &'static str,
    /// `type_name::<Self>()` for methods with a receiver, `""` otherwise.
    pub class_name: &'static str,
    /// The function's name.
    pub function_name: &'static str,
    /// True when the function has a `self` receiver.
    pub method: bool,
}

impl Site {
    fn generated_key(&self, args: &str) -> String {
        format!(
            "{}::{}::{}({args})",
            self.module_path, self.class_name, self.function_name
        )
    }
}

/// The key arguments as a JSON array; `None` (with a warning) when one does not serialize.
pub fn args_json<A: Serialize + ?Sized>(args: &A) -> Option<String> {
    match serde_json::to_string(args) {
        Ok(json) => Some(json),
        Err(error) => {
            if let Some(held_back) = ARGUMENT_WARNINGS.permit() {
                tracing::warn!(
                    held_back,
                    "rtc: arguments could not be serialized, the call runs uncached: {error}"
                );
            }
            None
        }
    }
}

/// A `key = ...` value.
pub fn custom_key(key: impl AsRef<str>) -> String {
    key.as_ref().to_owned()
}

/// A `tags = ...` value: one tag or many (see [`IntoTags`]).
pub fn tags(tags: impl IntoTags) -> Vec<String> {
    tags.into_tags()
        .map(|tag| tag.as_ref().to_owned())
        .collect()
}

/// One call of a decorated function.
pub struct Call<'a> {
    /// Where the function lives.
    pub site: Site,
    /// `cache = ...`; `None`: the global cache.
    pub cache: Option<&'a TaggedCache>,
    /// The key arguments as JSON (from [`args_json`]).
    pub args: Option<String>,
    /// `key = ...`; `None`: generated from the site and the arguments.
    pub key: Option<String>,
    /// `tags = ...`.
    pub tags: Vec<String>,
    /// `lifetime = ...`; `None`: the cache's default.
    pub lifetime: Option<Duration>,
    /// `lock = ...`.
    pub lock: bool,
    /// `lock_timeout = ...`.
    pub lock_timeout: Duration,
    /// `hook_userdata = ...`.
    pub hook_userdata: Option<&'a (dyn Any + Send + Sync)>,
}

/// The cache and keys of a call that can use the cache.
struct CallEntry<'a> {
    cache: &'a TaggedCache,
    key: String,
    keys: EntryKeys,
}

/// The timing and findings of a call, for the hook.
pub(crate) struct Report {
    started: Instant,
    info: CacheInfo,
    /// False for `refresh_<fn>`, which is neither a hit nor a miss.
    counted: bool,
}

/// A call's protocol, owned by a driver. If the driver stops before the protocol ends (the
/// function panicked, or the future was dropped) while it holds a Redis lock, the lock is
/// released at once, so that waiters in other processes do not wait for its expiry.
struct Driven<'a, V> {
    cache: &'a TaggedCache,
    flow: CallFlow<'a, V>,
    blocking: bool,
}

impl<V> Drop for Driven<'_, V> {
    fn drop(&mut self) {
        let Some(held) = self.flow.abandon() else {
            return;
        };
        if self.blocking {
            // A failure was reported by the driver; the lock then expires by itself.
            let _ = self.cache.drive(Single::new(held.release()));
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let cache = self.cache.clone();
            runtime.spawn(async move {
                let _ = cache.drive_async(Single::new(held.release())).await;
            });
        }
    }
}

impl<'a> Call<'a> {
    /// Returns the cached value, or computes, caches and returns it.
    pub fn run<R: Outcome>(self, codec: Codec<R::Value>, compute: impl FnOnce() -> R) -> R {
        let mode = Mode::Run {
            lock_timeout: self.lock.then_some(self.lock_timeout),
        };
        self.drive(mode, codec, compute)
    }

    /// Async twin of [`Call::run`].
    pub fn run_async<R, F>(
        self,
        codec: Codec<R::Value>,
        compute: F,
    ) -> impl Future<Output = R> + use<'a, R, F>
    where
        R: Outcome,
        F: Future<Output = R>,
    {
        let mode = Mode::Run {
            lock_timeout: self.lock.then_some(self.lock_timeout),
        };
        self.drive_async(mode, codec, compute)
    }

    /// Computes and stores the value, whatever the cache holds.
    pub fn refresh<R: Outcome>(self, codec: Codec<R::Value>, compute: impl FnOnce() -> R) -> R {
        self.drive(Mode::Refresh, codec, compute)
    }

    /// Async twin of [`Call::refresh`].
    pub fn refresh_async<R, F>(
        self,
        codec: Codec<R::Value>,
        compute: F,
    ) -> impl Future<Output = R> + use<'a, R, F>
    where
        R: Outcome,
        F: Future<Output = R>,
    {
        self.drive_async(Mode::Refresh, codec, compute)
    }

    /// The blocking driver of a call's protocol.
    fn drive<R: Outcome>(
        self,
        mode: Mode,
        codec: Codec<R::Value>,
        compute: impl FnOnce() -> R,
    ) -> R {
        let report = self.report(mode);
        let Some(entry) = self.entry() else {
            return compute();
        };
        let flow = CallFlow::new(
            entry.cache,
            &entry.keys,
            &codec,
            mode,
            self.lifetime,
            report,
        );
        let mut call = Driven {
            cache: entry.cache,
            flow,
            blocking: true,
        };
        loop {
            match entry.cache.drive(&mut call.flow) {
                Yield::Follow(flight, deadline) => call.flow.landed(flight.wait(deadline)),
                Yield::Cached(value) => {
                    return self.finish(&entry, &mut call.flow.report, R::from_cached(value))
                }
                Yield::Compute | Yield::Finished => break,
            }
        }
        let started = Instant::now();
        let outcome = compute();
        call.flow.report.info.decorated_elapsed = started.elapsed();
        call.flow.computed(encoded(&codec, &outcome));
        entry.cache.drive(&mut call.flow);
        self.finish(&entry, &mut call.flow.report, outcome)
    }

    /// The async driver of a call's protocol.
    async fn drive_async<R: Outcome>(
        self,
        mode: Mode,
        codec: Codec<R::Value>,
        compute: impl Future<Output = R>,
    ) -> R {
        let report = self.report(mode);
        let Some(entry) = self.entry() else {
            return compute.await;
        };
        let flow = CallFlow::new(
            entry.cache,
            &entry.keys,
            &codec,
            mode,
            self.lifetime,
            report,
        );
        let mut call = Driven {
            cache: entry.cache,
            flow,
            blocking: false,
        };
        loop {
            match entry.cache.drive_async(&mut call.flow).await {
                Yield::Follow(flight, deadline) => {
                    let landing = flight.wait_async(deadline).await;
                    call.flow.landed(landing);
                }
                Yield::Cached(value) => {
                    return self.finish(&entry, &mut call.flow.report, R::from_cached(value))
                }
                Yield::Compute | Yield::Finished => break,
            }
        }
        let started = Instant::now();
        let outcome = compute.await;
        call.flow.report.info.decorated_elapsed = started.elapsed();
        call.flow.computed(encoded(&codec, &outcome));
        entry.cache.drive_async(&mut call.flow).await;
        self.finish(&entry, &mut call.flow.report, outcome)
    }

    /// Removes the entry of exactly these arguments; true if one was removed.
    pub fn invalidate(self) -> bool {
        let Some(entry) = self.entry() else {
            return false;
        };
        let tombstone = format::tombstone();
        let delete = entry.cache.delete_operation(&entry.keys, &tombstone);
        entry
            .cache
            .count_delete(entry.cache.drive(Single::new(delete)))
    }

    /// Async twin of [`Call::invalidate`].
    pub async fn invalidate_async(self) -> bool {
        let Some(entry) = self.entry() else {
            return false;
        };
        let tombstone = format::tombstone();
        let delete = entry.cache.delete_operation(&entry.keys, &tombstone);
        let reply = entry.cache.drive_async(Single::new(delete)).await;
        entry.cache.count_delete(reply)
    }

    /// Makes every entry of this function miss, whatever its arguments: O(1).
    pub fn invalidate_all(self) -> bool {
        let Some(cache) = self.cache() else {
            return false;
        };
        let new_versions = cache.new_versions([cache.function_tag(&self.site)]);
        let invalidate = cache.invalidate_operation(&new_versions);
        cache.count_invalidation(cache.drive(Single::new(invalidate)))
    }

    /// Async twin of [`Call::invalidate_all`].
    pub async fn invalidate_all_async(self) -> bool {
        let Some(cache) = self.cache() else {
            return false;
        };
        let new_versions = cache.new_versions([cache.function_tag(&self.site)]);
        let invalidate = cache.invalidate_operation(&new_versions);
        let reply = cache.drive_async(Single::new(invalidate)).await;
        cache.count_invalidation(reply)
    }

    fn cache(&self) -> Option<&'a TaggedCache> {
        let global: Option<&'static TaggedCache> = crate::global::global();
        let cache = self.cache.or(global);
        if cache.is_none() {
            if let Some(held_back) = UNSET_GLOBAL_WARNINGS.permit() {
                tracing::warn!(
                    function = self.site.function_name,
                    held_back,
                    "rtc: no global cache is set (rtc::set_global) and no `cache = ...` given; running uncached"
                );
            }
        }
        cache
    }

    fn entry(&self) -> Option<CallEntry<'a>> {
        let cache = self.cache()?;
        let key = match (&self.key, &self.args) {
            (Some(key), _) => key.clone(),
            (None, Some(args)) => self.site.generated_key(args),
            (None, None) => return None,
        };
        let keys = cache.entry_keys(&key, &self.tags, vec![cache.function_tag(&self.site)]);
        Some(CallEntry { cache, key, keys })
    }

    fn report(&self, mode: Mode) -> Report {
        Report {
            counted: !matches!(mode, Mode::Refresh),
            started: Instant::now(),
            info: CacheInfo {
                filepath: self.site.filepath,
                class_name: self.site.class_name,
                function_name: self.site.function_name,
                method_decorator: self.site.method,
                ..CacheInfo::default()
            },
        }
    }

    fn finish<R>(&self, entry: &CallEntry<'_>, report: &mut Report, outcome: R) -> R {
        report.info.elapsed = report.started.elapsed();
        if report.counted {
            let namespace = entry.cache.namespace();
            metrics::call(
                namespace,
                self.site.function_name,
                report.info.hit,
                report.info.elapsed,
            );
        }
        tracing::debug!(
            function = self.site.function_name,
            hit = report.info.hit,
            elapsed_us = report.info.elapsed.as_micros() as u64,
            "rtc: cached call"
        );
        if let Some(hook) = entry.cache.hook() {
            report.info.function_args = self.args.clone().unwrap_or_default();
            hook.call(&entry.key, &self.tags, &report.info, self.hook_userdata);
        }
        outcome
    }
}

impl Report {
    fn waited(&mut self, since: Instant) {
        let waited = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.info.lock_waiting_ms = self.info.lock_waiting_ms.saturating_add(waited);
    }

    fn hit(&mut self, size: usize) {
        self.info.hit = true;
        self.info.serialized_size = size;
    }
}
