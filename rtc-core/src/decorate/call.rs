//! One call of a decorated function ([`Call`]): what it is made of, its public entry points
//! (`run`, `refresh`, `invalidate`, ...), and what its drivers ask of it: its cache, key,
//! entry, lifetime and near cache lookups.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use futures_util::future::{FutureExt, OptionFuture};
use smallvec::SmallVec;

use super::json_args::JsonArgs;
use super::outcome::{Outcome, ValueCodec};
use super::protocol::Mode;
use super::site::{near_value, reported, Site, Tags};
use super::stale::StaleOptions;
use super::work::{Detached, Here};
use crate::cache::TaggedCache;
use crate::format::EntryKeys;
use crate::lifetime::Lifetime;
use crate::near::Named;
use crate::warnings::WarnLimiter;

static UNSET_GLOBAL_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));
static ZERO_LIFETIME_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));

/// One call of a decorated function.
pub struct Call<'a> {
    /// Where the function lives.
    pub site: Site,
    /// `cache = ...`; `None`: the global cache.
    pub cache: Option<&'a TaggedCache>,
    /// The key arguments as JSON (from [`JsonArray`](super::JsonArray)).
    pub args: Option<JsonArgs>,
    /// `key = ...`; `None`: generated from the site and the arguments.
    pub key: Option<String>,
    /// `tags = ...`.
    pub tags: Tags,
    /// `lifetime = ...`; [`Lifetime::Default`] without it.
    pub lifetime: Lifetime,
    /// `lock = ...`.
    pub lock: bool,
    /// `lock_timeout = ...`.
    pub lock_timeout: Duration,
    /// `hook_userdata = ...`.
    pub hook_userdata: Option<&'a (dyn Any + Send + Sync)>,
    /// `jitter = ...`: up to this much is added to each stored entry's lifetime, at random.
    pub jitter: Option<Duration>,
    /// `stale_if_error = ...`, `stale_while_revalidate = ...`, `stale_if_slow = ...`; those
    /// not given are the cache's.
    pub stale: StaleOptions,
}

/// The cache and keys of a call that can use the cache. Its key itself is not kept: it is
/// hashed from its parts, and built ([`Call::key`]) only for a hook.
pub(super) struct CallEntry<'a> {
    pub(super) cache: &'a TaggedCache,
    pub(super) keys: EntryKeys,
}

impl<'a> Call<'a> {
    /// Returns the cached value, or computes, caches and returns it. `stale_if_error` applies;
    /// `stale_while_revalidate` and `stale_if_slow` need [`Call::run_detached`].
    pub fn run<R: Outcome>(self, codec: ValueCodec<R::Value>, compute: impl FnOnce() -> R) -> R {
        let mode = self.run_mode();
        self.drive(mode, codec, Here(compute))
    }

    /// Async twin of [`Call::run`].
    pub fn run_async<R, F>(
        self,
        codec: ValueCodec<R::Value>,
        compute: F,
    ) -> impl Future<Output = R> + use<'a, R, F>
    where
        R: Outcome,
        F: Future<Output = R>,
    {
        let mode = self.run_mode();
        self.drive_async(mode, codec, Here(compute))
    }

    /// [`Call::run`] for a computation that may outlive the call (its function's arguments
    /// are owned): with `stale_while_revalidate` it refreshes a stale entry on a thread of its
    /// own, and with `stale_if_slow` it may finish after the call returned a stale value.
    pub fn run_detached<R, F>(self, codec: ValueCodec<R::Value>, compute: F) -> R
    where
        R: Outcome + Send + 'static,
        R::Value: Send + Sync + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let mode = self.run_mode();
        self.drive(mode, codec, Detached(compute))
    }

    /// Async twin of [`Call::run_detached`]: refreshes run on the current tokio runtime's
    /// blocking pool and late computations on its tasks (without one, a refresh runs on a
    /// thread of its own and `stale_if_slow` does not apply).
    pub fn run_detached_async<R, F>(
        self,
        codec: ValueCodec<R::Value>,
        compute: F,
    ) -> impl Future<Output = R> + use<'a, R, F>
    where
        R: Outcome + Send + 'static,
        R::Value: Send + Sync + 'static,
        F: Future<Output = R> + Send + 'static,
    {
        let mode = self.run_mode();
        self.drive_async(mode, codec, Detached(compute))
    }

    /// How `run` uses the cache: with the stampede lock when `lock = true`.
    fn run_mode(&self) -> Mode {
        Mode::Run {
            lock_timeout: self.lock.then_some(self.lock_timeout),
        }
    }

    /// Computes and stores the value, whatever the cache holds.
    pub fn refresh<R: Outcome>(
        self,
        codec: ValueCodec<R::Value>,
        compute: impl FnOnce() -> R,
    ) -> R {
        self.drive(Mode::Refresh, codec, Here(compute))
    }

    /// Async twin of [`Call::refresh`].
    pub fn refresh_async<R, F>(
        self,
        codec: ValueCodec<R::Value>,
        compute: F,
    ) -> impl Future<Output = R> + use<'a, R, F>
    where
        R: Outcome,
        F: Future<Output = R>,
    {
        self.drive_async(Mode::Refresh, codec, Here(compute))
    }

    /// Removes the entry of exactly these arguments (the cache's `delete` of the call's key and
    /// tags); true if one was removed.
    pub fn invalidate(self) -> bool {
        match (self.cache(), self.key()) {
            (Some(cache), Some(key)) => cache.delete(key, &self.tags[..]),
            _ => false,
        }
    }

    /// Async twin of [`Call::invalidate`].
    pub fn invalidate_async(self) -> impl Future<Output = bool> + 'a {
        let target = self.cache().zip(self.key());
        let tags = self.tags.into_vec();
        OptionFuture::from(target.map(|(cache, key)| cache.delete_async(key, tags)))
            .map(Option::unwrap_or_default)
    }

    /// Makes every entry of this function miss, whatever its arguments: O(1).
    pub fn invalidate_all(self) -> bool {
        self.cache().is_some_and(|cache| {
            cache.invalidate_tags(cache.new_versions([cache.function_tag(self.site.identity)]))
        })
    }

    /// Async twin of [`Call::invalidate_all`].
    pub fn invalidate_all_async(self) -> impl Future<Output = bool> + 'a {
        let invalidation = self.cache().map(|cache| {
            cache
                .invalidate_tags_async(cache.new_versions([cache.function_tag(self.site.identity)]))
        });
        OptionFuture::from(invalidation).map(Option::unwrap_or_default)
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

    /// What this call's value is kept under in the near cache: only a `run` (not a refresh)
    /// of a function whose values are kept decoded, on a cache with a near cache.
    pub(super) fn named<'c, V>(
        &'c self,
        entry: &'c CallEntry<'_>,
        codec: &ValueCodec<V>,
        mode: Mode,
    ) -> Option<Named<'c, String>> {
        if !matches!(mode, Mode::Run { .. }) || codec.sharing().is_none() {
            return None;
        }
        let named = entry
            .cache
            .named(self.site.identity, self.near_key()?, &self.tags)?;
        Some(named.kept_by(self.site.keyed_tags))
    }

    /// The near cache's key for this call: the custom key, or the arguments' JSON (the
    /// function's identity is part of what the near cache names, so the generated key need not
    /// be built).
    fn near_key(&self) -> Option<&[u8]> {
        match (&self.key, &self.args) {
            (Some(key), _) => Some(key.as_bytes()),
            (None, args) => args.as_ref().map(JsonArgs::as_bytes),
        }
    }

    /// The value the near cache holds for this call, if it holds one: no key derivation, no
    /// decoding, no round trip. Counted as a hit.
    pub(super) fn near_hit<V>(
        &self,
        codec: &ValueCodec<V>,
        mode: Mode,
    ) -> Option<(&'a TaggedCache, V)> {
        if !matches!(mode, Mode::Run { .. }) {
            return None;
        }
        let cache = self.cache.or(crate::global::global())?;
        if self.site.keyed_tags.is_some() && !reported(cache) {
            // `Site::near_answer` looked already, before the tags were built.
            return None;
        }
        let named = cache.named(self.site.identity, self.near_key()?, &self.tags)?;
        let mut answer = None;
        near_value(cache, &named, codec, &mut answer);
        Some((cache, answer?))
    }

    /// The key of this call's entry: `key = ...`, or the one generated from the site and the
    /// arguments; `None` when the arguments could not be serialized.
    pub fn key(&self) -> Option<String> {
        self.key_parts().map(|parts| parts.concat())
    }

    /// [`Call::key`] as parts whose concatenation it is: the custom key, or the generated key's
    /// parts ([`Site::generated_key_parts`]).
    fn key_parts(&self) -> Option<SmallVec<[&str; 4]>> {
        match (&self.key, &self.args) {
            (Some(key), _) => Some(SmallVec::from_slice(&[key.as_str()])),
            (None, Some(args)) => Some(SmallVec::from(
                self.site.generated_key_parts(args.as_str()?),
            )),
            (None, None) => None,
        }
    }

    /// `lifetime` (or the cache's default) plus a random part of `jitter`; "never expires" stays so.
    pub(super) fn stored_lifetime(&self, cache: &TaggedCache) -> Lifetime {
        let Some(jitter) = self.jitter else {
            return self.lifetime;
        };
        match self.lifetime.resolve(cache.default_lifetime()) {
            Some(lifetime) => {
                let extra = Duration::try_from_secs_f64(jitter.as_secs_f64() * random_fraction())
                    .unwrap_or(jitter);
                Lifetime::After(lifetime.saturating_add(extra))
            }
            None => Lifetime::Never,
        }
    }

    /// True when `lifetime` is a zero `Duration` (computed at run time: a zero literal is a
    /// compile error): no entry can live that long, so the call runs its body uncached, with a
    /// rate-limited warning.
    pub(super) fn writes_nothing(&self) -> bool {
        if !self.lifetime.is_zero() {
            return false;
        }
        if let Some(held_back) = ZERO_LIFETIME_WARNINGS.permit() {
            tracing::warn!(
                function = self.site.function_name,
                held_back,
                "rtc: `lifetime` is zero, which no entry can live; running uncached \
                 (`Lifetime::Never` never expires)"
            );
        }
        true
    }

    pub(super) fn entry(&self) -> Option<CallEntry<'a>> {
        let cache = self.cache()?;
        let key = self.key_parts()?;
        // The cache's own `get_with` has no identity: its entries are those of `get` and `set`.
        let function_tag =
            (!self.site.identity.is_empty()).then(|| cache.function_tag(self.site.identity));
        let keys = cache.entry_keys(&key, &self.tags, function_tag);
        Some(CallEntry { cache, keys })
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
