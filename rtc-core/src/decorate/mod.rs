//! What `#[cached]` functions call at run time. Not public API: the macro's generated code is its
//! only user, through `rtc::__private`.

use std::any::Any;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::cache::TaggedCache;
use crate::entry::Observed;
use crate::flights::Landing;
use crate::health::WarnLimiter;
use crate::hook::CacheInfo;
use crate::request::{Lookup, Request};

mod arguments;
mod locked;
mod outcome;
mod seconds;

pub use self::arguments::{
    KeyArgument, OptionalArgument, SerializableArgument, UnserializableArgument,
};
use self::outcome::encoded;
pub use self::outcome::{skips, AsIs, Codec, Outcome, Unless};
pub use self::seconds::{duration, Seconds};

static UNSET_GLOBAL_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));
static ARGUMENT_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// Where a decorated function lives.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// `file!()`.
    pub filepath: &'static str,
    /// `module_path!()`.
    pub module_path: &'static str,
    /// The `impl`'s self type as written (`Repo<T>`) for functions of an `impl` block, `""`
    /// otherwise.
    pub class_name: &'static str,
    /// The function's name.
    pub function_name: &'static str,
    /// True when the function has a `self` receiver.
    pub method: bool,
    /// What the function's keys and implicit tag are made of: its `name = ...`, or its module
    /// path, `impl` and name as written (`app::repo::<PgRepo as UserRepo>::find`).
    pub identity: &'static str,
}

impl Site {
    fn generated_key(&self, args: &str) -> String {
        format!("{}({args})", self.identity)
    }
}

/// The key arguments as a JSON array; `None` (with a warning) when one does not serialize.
pub fn args_json<A: KeyArgument + ?Sized>(args: &A) -> Option<String> {
    match args.to_json() {
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

/// A `tags = ...` value.
pub fn tags<I, S>(tags: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    tags.into_iter()
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
    /// `jitter = ...`: up to this much is added to each stored entry's lifetime, at random.
    pub jitter: Option<Duration>,
}

/// The cache and keys of a call that can use the cache.
struct Target<'a> {
    cache: &'a TaggedCache,
    key: String,
    request: Request,
}

/// The timing and findings of a call, for the hook.
struct Report {
    started: Instant,
    info: CacheInfo,
}

impl<'a> Call<'a> {
    /// Returns the cached value, or computes, caches and returns it.
    pub fn run<R: Outcome>(self, codec: Codec<R::Value>, compute: impl FnOnce() -> R) -> R {
        let mut report = self.report();
        let Some(target) = self.target() else {
            return compute();
        };
        let observed =
            match self.first_look(target.cache.lookup(&target.request), &codec, &mut report) {
                Ok(hit) => return self.finish(&target, report, hit),
                Err(observed) => observed,
            };
        if self.lock {
            return self.run_locked(&target, codec, compute, observed, report);
        }
        let (outcome, _) = self.compute_and_store(&target, &codec, compute, observed, &mut report);
        self.finish(&target, report, outcome)
    }

    /// Async twin of [`Call::run`].
    pub async fn run_async<R: Outcome>(
        self,
        codec: Codec<R::Value>,
        compute: impl Future<Output = R>,
    ) -> R {
        let mut report = self.report();
        let Some(target) = self.target() else {
            return compute.await;
        };
        let lookup = target.cache.lookup_async(&target.request).await;
        let observed = match self.first_look(lookup, &codec, &mut report) {
            Ok(hit) => return self.finish(&target, report, hit),
            Err(observed) => observed,
        };
        if self.lock {
            return self
                .run_locked_async(&target, codec, compute, observed, report)
                .await;
        }
        let (outcome, _) = self
            .compute_and_store_async(&target, &codec, compute, observed, &mut report)
            .await;
        self.finish(&target, report, outcome)
    }

    /// The decoded value of a hit, or the versions observed (`None`: the backend is unavailable).
    fn first_look<R: Outcome>(
        &self,
        lookup: Lookup,
        codec: &Codec<R::Value>,
        report: &mut Report,
    ) -> Result<R, Option<Observed>> {
        match lookup {
            Lookup::Hit(bytes, observed) => match (codec.decode)(&bytes) {
                Some(value) => {
                    report.hit(bytes.len());
                    report.info.lock_full_hit = self.lock;
                    Ok(R::from_cached(value))
                }
                None => Err(Some(observed)),
            },
            Lookup::Miss(observed) => Err(Some(observed)),
            Lookup::Unavailable => {
                tracing::debug!(
                    function = self.site.function_name,
                    "rtc: cache unavailable, bypassing it"
                );
                Err(None)
            }
        }
    }

    /// Runs the body and stores its cacheable part stamped with `observed` (completed first);
    /// returns the outcome and what to share with callers waiting for it.
    fn compute_and_store<R: Outcome>(
        &self,
        target: &Target<'_>,
        codec: &Codec<R::Value>,
        compute: impl FnOnce() -> R,
        observed: Option<Observed>,
        report: &mut Report,
    ) -> (R, Landing) {
        let observed = observed.and_then(|observed| target.cache.complete_versions(observed));
        let outcome = report.time_body(compute);
        let bytes = encoded(codec, &outcome);
        if let (Some(observed), Some(bytes)) = (&observed, &bytes) {
            report.info.serialized_size = bytes.len();
            target.cache.store_observed(
                &target.request,
                observed,
                bytes,
                self.stored_lifetime(target),
            );
        }
        (outcome, Landing::new(bytes, observed))
    }

    async fn compute_and_store_async<R: Outcome>(
        &self,
        target: &Target<'_>,
        codec: &Codec<R::Value>,
        compute: impl Future<Output = R>,
        observed: Option<Observed>,
        report: &mut Report,
    ) -> (R, Landing) {
        let observed = match observed {
            Some(observed) => target.cache.complete_versions_async(observed).await,
            None => None,
        };
        let outcome = report.time_body_async(compute).await;
        let bytes = encoded(codec, &outcome);
        if let (Some(observed), Some(bytes)) = (&observed, &bytes) {
            report.info.serialized_size = bytes.len();
            target
                .cache
                .store_observed_async(
                    &target.request,
                    observed,
                    bytes,
                    self.stored_lifetime(target),
                )
                .await;
        }
        (outcome, Landing::new(bytes, observed))
    }

    /// Computes and stores the value, whatever the cache holds.
    pub fn refresh<R: Outcome>(self, codec: Codec<R::Value>, compute: impl FnOnce() -> R) -> R {
        let Some(target) = self.target() else {
            return compute();
        };
        // The versions are read before computing, so an invalidation during it still wins.
        let observed = match target.cache.lookup(&target.request) {
            Lookup::Hit(_, observed) | Lookup::Miss(observed) => Some(observed),
            Lookup::Unavailable => None,
        };
        let mut report = self.report();
        self.compute_and_store(&target, &codec, compute, observed, &mut report)
            .0
    }

    /// Async twin of [`Call::refresh`].
    pub async fn refresh_async<R: Outcome>(
        self,
        codec: Codec<R::Value>,
        compute: impl Future<Output = R>,
    ) -> R {
        let Some(target) = self.target() else {
            return compute.await;
        };
        let observed = match target.cache.lookup_async(&target.request).await {
            Lookup::Hit(_, observed) | Lookup::Miss(observed) => Some(observed),
            Lookup::Unavailable => None,
        };
        let mut report = self.report();
        self.compute_and_store_async(&target, &codec, compute, observed, &mut report)
            .await
            .0
    }

    /// Removes the entry of exactly these arguments; true if one was removed.
    pub fn invalidate(self) -> bool {
        self.target()
            .is_some_and(|target| target.cache.remove(&target.request))
    }

    /// Async twin of [`Call::invalidate`].
    pub async fn invalidate_async(self) -> bool {
        match self.target() {
            Some(target) => target.cache.remove_async(&target.request).await,
            None => false,
        }
    }

    /// Makes every entry of this function miss, whatever its arguments: O(1).
    pub fn invalidate_all(self) -> bool {
        let Some(cache) = self.cache() else {
            return false;
        };
        let bumps = cache.bumps([cache.function_tag(&self.site)]);
        cache.bump(&bumps)
    }

    /// Async twin of [`Call::invalidate_all`].
    pub async fn invalidate_all_async(self) -> bool {
        let Some(cache) = self.cache() else {
            return false;
        };
        let bumps = cache.bumps([cache.function_tag(&self.site)]);
        cache.bump_async(&bumps).await
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

    /// The key of this call's entry: `key = ...`, or the one generated from the site and the
    /// arguments; `None` when the arguments could not be serialized.
    pub fn key(&self) -> Option<String> {
        match (&self.key, &self.args) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(args)) => Some(self.site.generated_key(args)),
            (None, None) => None,
        }
    }

    /// `lifetime` (or the cache's default) plus a random part of `jitter`; "never expires" stays so.
    fn stored_lifetime(&self, target: &Target<'_>) -> Option<Duration> {
        let Some(jitter) = self.jitter else {
            return self.lifetime;
        };
        match self.lifetime.or_else(|| target.cache.default_lifetime()) {
            Some(lifetime) if !lifetime.is_zero() => {
                let extra = Duration::try_from_secs_f64(jitter.as_secs_f64() * random_fraction())
                    .unwrap_or(jitter);
                Some(lifetime.saturating_add(extra))
            }
            unchanged => unchanged,
        }
    }

    fn target(&self) -> Option<Target<'a>> {
        let cache = self.cache()?;
        let key = self.key()?;
        let request = cache.request(&key, &self.tags, vec![cache.function_tag(&self.site)]);
        Some(Target {
            cache,
            key,
            request,
        })
    }

    fn report(&self) -> Report {
        Report {
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

    fn finish<R>(&self, target: &Target<'_>, mut report: Report, outcome: R) -> R {
        report.info.elapsed = report.started.elapsed();
        tracing::debug!(
            function = self.site.function_name,
            hit = report.info.hit,
            elapsed_us = report.info.elapsed.as_micros() as u64,
            "rtc: cached call"
        );
        if let Some(hook) = target.cache.hook() {
            report.info.function_args = self.args.clone().unwrap_or_default();
            hook.call(&target.key, &self.tags, &report.info, self.hook_userdata);
        }
        outcome
    }
}

/// A number in `[0, 1)`, different on each call: `RandomState` seeds each hasher afresh.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
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

    fn time_body<R>(&mut self, compute: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let outcome = compute();
        self.info.decorated_elapsed = started.elapsed();
        outcome
    }

    async fn time_body_async<R>(&mut self, compute: impl Future<Output = R>) -> R {
        let started = Instant::now();
        let outcome = compute.await;
        self.info.decorated_elapsed = started.elapsed();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::random_fraction;

    #[test]
    fn random_fractions_are_in_the_unit_interval_and_vary() {
        let fractions: Vec<f64> = (0..64).map(|_| random_fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(fractions.windows(2).any(|pair| pair[0] != pair[1]));
    }
}
