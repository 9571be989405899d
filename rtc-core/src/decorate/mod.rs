//! What `#[cached]` functions call at run time. Not public API: the macro's generated code is its
//! only user, through `rtc::__private`.
//!
//! A call's logic is the state machine in `protocol`; the methods of [`Call`] are its two
//! drivers, blocking and async, which alone wait for other callers and run the function.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;

use futures_util::future::{FutureExt, OptionFuture};
use std::time::{Duration, Instant};

use crate::cache::TaggedCache;
use crate::engine::{Progress, Single};
use crate::format::{EntryKeys, Observed};
use crate::hook::CacheInfo;
pub use crate::lifetime::Lifetime;
use crate::metrics;
pub use crate::near::KeyedTags;
use crate::near::{Named, NearValue};
use crate::tags::IntoTags;
use crate::warnings::WarnLimiter;
use smallvec::SmallVec;

mod arguments;
mod background;
mod get_with;
mod host;
mod json_args;
mod outcome;
mod protocol;
mod seconds;
mod shape;
#[cfg(feature = "simulation")]
pub(crate) mod simulated;
mod stale;
#[cfg(test)]
mod virtual_time;
mod work;

pub use self::arguments::{
    KeyArgument, OptionalArgument, SerializableArgument, UnserializableArgument,
};
use self::background::{Background, Computed, Timed};
pub use self::get_with::EntryRef;
pub use self::json_args::{JsonArgs, JsonArray};
use self::outcome::encoded;
pub use self::outcome::{
    skips, AsIs, NearProbe, NearShared, NearUnshared, Outcome, Sharing, Unless, ValueCodec,
};
use self::protocol::{CallFlow, Mode, Yield};
pub use self::seconds::{duration, lifetime, IntoLifetime, Seconds};
pub use self::shape::{
    caches_errors, caches_none, custom_codec, fails, near_probe, serde_codec, AsIsShape, Fails,
    IsOption, IsResult, OptionShape, ResultShape, Shape, ShapeAsIs, ShapeOfOption, ShapeOfResult,
    ShapeProbe,
};
pub use self::stale::StaleOptions;
use self::stale::Windows;
use self::work::{Awaited, Blocking, Detached, Detaches, Here};

static UNSET_GLOBAL_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));
static ARGUMENT_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));
static ZERO_LIFETIME_WARNINGS: WarnLimiter = WarnLimiter::new(Duration::from_secs(60));

/// What the expansion of a `#[cached]` function outside an `impl` block's `#[cached]` puts
/// beside it: nothing of use where the function stands alone (a module, a block), and an error
/// where it is an associated function of an `impl` block that lacks `#[cached]`, whose note
/// names this macro (the attribute cannot see that it is in an `impl` block; an unnamed
/// `const` is an item of modules and blocks, not of `impl` blocks).
#[doc(hidden)]
#[macro_export]
macro_rules! put_cached_on_the_impl_block_too {
    () => {
        const _: () = ();
    };
}
pub use crate::put_cached_on_the_impl_block_too;

/// Where a decorated function lives.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// `file!()`.
    pub file: &'static str,
    /// `module_path!()`.
    pub module_path: &'static str,
    /// The `impl`'s self type as written (`Repo<T>`) for functions of an `impl` block, `""`
    /// otherwise.
    pub impl_type: &'static str,
    /// The function's name.
    pub function_name: &'static str,
    /// True when the function has a `self` receiver.
    pub is_method: bool,
    /// What the function's keys and implicit tag are made of: its `name = ...`, or its module
    /// path, `impl` and name as written (`app::repo::<PgRepo as UserRepo>::find`).
    pub identity: &'static str,
    /// The site's mark when its tags are made from its key arguments alone, which the macro
    /// gives only with a generated key: its near entries are then looked up before its tags are
    /// built ([`Site::near_answer`]).
    pub keyed_tags: Option<&'static KeyedTags>,
}

impl Site {
    /// Fills `answer` with the value the near cache holds for a call of this site with `args` (left
    /// as it is when there is none), looked up before the call's tags are built: only for a site
    /// whose tags follow from its key ([`Site::keyed_tags`]), with a generated key, on a cache
    /// whose calls nobody observes (the hook and the metrics see a call with its tags, through
    /// [`Call`]). Counted as a hit.
    pub fn near_answer<V>(
        &self,
        cache: Option<&TaggedCache>,
        args: Option<&[u8]>,
        codec: &ValueCodec<V>,
        answer: &mut Option<V>,
    ) {
        let (Some(site), Some(args)) = (self.keyed_tags, args) else {
            return;
        };
        let Some(cache) = cache.or(crate::global::global()) else {
            return;
        };
        if !Call::reported(cache) {
            let named = Named::<String>::by_key(self.identity, args, site);
            near_value(cache, &named, codec, answer);
        }
    }

    fn generated_key(&self, args: &str) -> String {
        let mut key = String::with_capacity(self.identity.len() + args.len() + 2);
        for part in [self.identity, "(", args, ")"] {
            key.push_str(part);
        }
        key
    }
}

/// A `key = ...` value.
pub fn custom_key(key: impl AsRef<str>) -> String {
    key.as_ref().to_owned()
}

/// A call's tags: inline up to two (no allocation for the list itself in the usual case).
pub type Tags = SmallVec<[String; 2]>;

/// A `tags = ...` value: one tag or many (see [`IntoTags`]).
pub fn tags(tags: impl IntoTags) -> Tags {
    tags.into_tags()
        .map(|tag| tag.as_ref().to_owned())
        .collect()
}

/// One element of a `tags = [...]` array: any kind of string, so that `"users"` and
/// `format!("user:{id}")` can sit side by side.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tag: a tag is a string",
    label = "expected a string: a literal, a `&str`, a `String` or a `format!(..)`",
    note = "make a tag of a number or another value with `format!`, e.g. `format!(\"user:{{id}}\")`"
)]
pub trait Tag {
    /// The tag's text.
    fn into_tag(self) -> String;
}

impl<T: AsRef<str> + ?Sized> Tag for &T {
    fn into_tag(self) -> String {
        self.as_ref().to_owned()
    }
}

impl Tag for String {
    fn into_tag(self) -> String {
        self
    }
}

impl Tag for Cow<'_, str> {
    fn into_tag(self) -> String {
        self.into_owned()
    }
}

impl Tag for Box<str> {
    fn into_tag(self) -> String {
        self.into_string()
    }
}

/// One element of a `tags = [...]` array as a tag (a `String` is moved, not copied).
pub fn tag(tag: impl Tag) -> String {
    tag.into_tag()
}

/// One call of a decorated function.
pub struct Call<'a> {
    /// Where the function lives.
    pub site: Site,
    /// `cache = ...`; `None`: the global cache.
    pub cache: Option<&'a TaggedCache>,
    /// The key arguments as JSON (from [`JsonArray`]).
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
    flow: CallFlow<'a, V, TaggedCache>,
    blocking: bool,
    /// The time of the first step, read when the call started (one clock read fewer).
    first_step: Option<Instant>,
}

impl<V> Driven<'_, V> {
    /// The time of the next step: the call's start for the first, the clock's after that.
    fn now(&mut self) -> Instant {
        self.first_step.take().unwrap_or_else(Instant::now)
    }

    /// Steps the protocol, blocking on each round trip it asks for, until it yields.
    fn step(&mut self) -> Yield<V> {
        let mut reply = None;
        loop {
            let now = self.now();
            match self.flow.step(now, reply.take()) {
                Progress::Done(output) => return output,
                Progress::Send => reply = Some(self.cache.round_trip(self.flow.operation())),
            }
        }
    }

    /// Async twin of [`Driven::step`].
    async fn step_async(&mut self) -> Yield<V> {
        let mut reply = None;
        loop {
            let now = self.now();
            match self.flow.step(now, reply.take()) {
                Progress::Done(output) => return output,
                Progress::Send => {
                    let operation = self.flow.operation();
                    reply = Some(self.cache.round_trip_async(operation).await);
                }
            }
        }
    }

    /// The body returned: its outcome, and the bytes to store.
    fn done<W, R: Outcome<Value = V>>(&mut self, (outcome, bytes): Computed<R>) -> Body<W, R> {
        self.flow.computed(bytes, outcome.failed());
        Body::Done(outcome)
    }

    /// What waiting for a body run with a time limit gave: its outcome in time, or a late body
    /// still running.
    fn waited<W, R: Outcome<Value = V>>(
        &mut self,
        waited: Result<Computed<R>, Timed<R>>,
    ) -> Body<W, R> {
        match waited {
            Ok(computed) => self.done(computed),
            Err(timed) => {
                self.flow.late();
                Body::Running(timed)
            }
        }
    }

    /// Offers a late body the versions to store its value with; `Err` when it finished
    /// meanwhile, for the driver to take its outcome after all.
    fn hand_over<W, R>(
        &mut self,
        timed: Timed<R>,
        observed: Option<Observed>,
    ) -> Result<Body<W, R>, Timed<R>> {
        if !timed.hand_over(observed) {
            return Err(timed);
        }
        self.flow.handed_over();
        Ok(Body::Running(timed))
    }
}

/// The function's body, as far as a driver got with it.
enum Body<W, R> {
    /// Not run yet.
    Ready(W),
    /// Running on its own (started with a time limit).
    Running(Timed<R>),
    /// Done, with this outcome.
    Done(R),
}

/// How a driver ends the call after a yield its loop has no arm for: [`Yield::Cached`],
/// [`Yield::Instead`] and [`Yield::Finished`] return; anything else is a bug in the protocol,
/// reported, and the call ends without the cache.
enum Settled<W, R> {
    /// Return this (reported to the hook).
    Return(R),
    /// Run the body and return what it gives.
    Run(W),
    /// Wait for the body and return what it gives.
    Join(Timed<R>),
}

fn settled<R: Outcome, W>(step: Yield<R::Value>, body: Body<W, R>) -> Settled<W, R> {
    match (step, body) {
        (Yield::Cached(value) | Yield::Instead(value), _) => Settled::Return(R::from_cached(value)),
        (Yield::Finished, Body::Done(outcome)) => Settled::Return(outcome),
        (step, body) => {
            tracing::error!(
                "rtc: bug in rtc, please report it: the call's protocol yielded {} to a driver \
                 whose body is {}; the call goes on without the cache",
                step.name(),
                body.name()
            );
            match body {
                Body::Ready(work) => Settled::Run(work),
                Body::Running(timed) => Settled::Join(timed),
                Body::Done(outcome) => Settled::Return(outcome),
            }
        }
    }
}

impl<W, R> Body<W, R> {
    /// Its name, for a report.
    fn name(&self) -> &'static str {
        match self {
            Body::Ready(_) => "not run",
            Body::Running(_) => "running",
            Body::Done(_) => "done",
        }
    }
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

    /// The blocking driver of a call's protocol: it sends what the protocol asks for, and
    /// does what it yields: waits for a flight, runs the body (with a time limit, on a thread
    /// of its own), hands a late body over, starts a refresh, returns.
    fn drive<R: Outcome, W: Blocking<R>>(
        &self,
        mode: Mode,
        codec: ValueCodec<R::Value>,
        work: W,
    ) -> R {
        if self.writes_nothing() {
            return work.run();
        }
        if let Some((cache, value)) = self.near_hit(&codec, mode) {
            return self.finish_near(cache, mode, R::from_cached(value));
        }
        let report = self.report(mode, Instant::now());
        let Some(entry) = self.entry() else {
            return work.run();
        };
        let named = self.named(&entry, &codec, mode);
        let mut call = self.driven::<_, W>(&entry, &codec, mode, report, named, true);
        let mut body = Body::Ready(work);
        loop {
            body = match (call.step(), body) {
                (Yield::Follow(flight, deadline), body) => {
                    call.flow.landed(flight.wait(deadline));
                    body
                }
                (Yield::Compute(limit), Body::Ready(work)) => {
                    let timed = match limit {
                        Some(limit) => {
                            let background = self.background(&entry, &codec, &call.flow);
                            work.timed(background).map(|timed| (timed, limit))
                        }
                        None => Err(work),
                    };
                    match timed {
                        Ok((timed, limit)) => call.waited(timed.wait(limit)),
                        Err(work) => call.done(computed_here(work.run(), &codec, entry.cache)),
                    }
                }
                (Yield::HandOver(observed), Body::Running(timed)) => {
                    match call.hand_over(timed, observed) {
                        Ok(body) => body,
                        Err(timed) => call.done(timed.join()),
                    }
                }
                (Yield::Join, Body::Running(timed)) => {
                    return self.finish(&entry, &mut call.flow.report, timed.join().0)
                }
                (Yield::Revalidate(value, leader), Body::Ready(work)) => {
                    work.refresh(self.background(&entry, &codec, &call.flow), leader);
                    return self.finish(&entry, &mut call.flow.report, R::from_cached(value));
                }
                (step, body) => match settled(step, body) {
                    Settled::Return(outcome) => {
                        return self.finish(&entry, &mut call.flow.report, outcome)
                    }
                    Settled::Run(work) => return work.run(),
                    Settled::Join(timed) => return timed.join().0,
                },
            };
        }
    }

    /// The async driver of a call's protocol: [`Call::drive`], awaiting instead of blocking.
    async fn drive_async<R: Outcome, W: Awaited<R>>(
        self,
        mode: Mode,
        codec: ValueCodec<R::Value>,
        work: W,
    ) -> R {
        if self.writes_nothing() {
            return work.run().await;
        }
        if let Some((cache, value)) = self.near_hit(&codec, mode) {
            return self.finish_near(cache, mode, R::from_cached(value));
        }
        let report = self.report(mode, Instant::now());
        let Some(entry) = self.entry() else {
            return work.run().await;
        };
        let named = self.named(&entry, &codec, mode);
        let mut call = self.driven::<_, W>(&entry, &codec, mode, report, named, false);
        let mut body = Body::Ready(work);
        loop {
            body = match (call.step_async().await, body) {
                (Yield::Follow(flight, deadline), body) => {
                    call.flow.landed(flight.wait_async(deadline).await);
                    body
                }
                (Yield::Compute(limit), Body::Ready(work)) => {
                    let timed = match limit {
                        Some(limit) => {
                            let background = self.background(&entry, &codec, &call.flow);
                            work.timed(background).map(|timed| (timed, limit))
                        }
                        None => Err(work),
                    };
                    match timed {
                        Ok((timed, limit)) => call.waited(timed.wait_async(Some(limit)).await),
                        Err(work) => {
                            call.done(computed_here(work.run().await, &codec, entry.cache))
                        }
                    }
                }
                (Yield::HandOver(observed), Body::Running(timed)) => {
                    match call.hand_over(timed, observed) {
                        Ok(body) => body,
                        Err(timed) => call.done(joined(timed.wait_async(None).await)),
                    }
                }
                (Yield::Join, Body::Running(timed)) => {
                    let (outcome, _) = joined(timed.wait_async(None).await);
                    return self.finish(&entry, &mut call.flow.report, outcome);
                }
                (Yield::Revalidate(value, leader), Body::Ready(work)) => {
                    work.refresh(self.background(&entry, &codec, &call.flow), leader);
                    return self.finish(&entry, &mut call.flow.report, R::from_cached(value));
                }
                (step, body) => match settled(step, body) {
                    Settled::Return(outcome) => {
                        return self.finish(&entry, &mut call.flow.report, outcome)
                    }
                    Settled::Run(work) => return work.run().await,
                    Settled::Join(timed) => return joined(timed.wait_async(None).await).0,
                },
            };
        }
    }

    /// What a refresh or a late computation of this call needs, owned.
    fn background<V>(
        &self,
        entry: &CallEntry<'_>,
        codec: &ValueCodec<V>,
        flow: &CallFlow<'_, V, TaggedCache>,
    ) -> Background<V> {
        Background {
            cache: entry.cache.clone(),
            keys: entry.keys.clone(),
            codec: codec.clone(),
            lifetime: flow.lifetime(),
            lock_timeout: self.lock.then_some(self.lock_timeout),
            windows: flow.windows(),
            function_name: self.site.function_name,
        }
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

    /// This call's protocol on `entry`, owned by a driver (`blocking` for the sync one) that
    /// runs the body as `W` does.
    fn driven<'c, V, W: Detaches>(
        &self,
        entry: &'c CallEntry<'_>,
        codec: &'c ValueCodec<V>,
        mode: Mode,
        report: Report,
        named: Option<Named<'c, String>>,
        blocking: bool,
    ) -> Driven<'c, V> {
        let started = report.started;
        let lifetime = self.stored_lifetime(entry.cache);
        // `refresh_<fn>` runs its body in the call, but writes the entry as the function's calls
        // do, with the same stale window.
        let background = W::DETACHES || (self.stale.background && matches!(mode, Mode::Refresh));
        let windows = Windows::resolve(self.stale, entry.cache.stale_defaults(), background);
        let mut flow = CallFlow::new(
            entry.cache,
            &entry.keys,
            codec,
            mode,
            lifetime,
            windows,
            report,
        );
        flow.fill_near(named);
        Driven {
            cache: entry.cache,
            flow,
            blocking,
            first_step: Some(started),
        }
    }

    /// What this call's value is kept under in the near cache: only a `run` (not a refresh)
    /// of a function whose values are kept decoded, on a cache with a near cache.
    fn named<'c, V>(
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
    fn near_hit<V>(&self, codec: &ValueCodec<V>, mode: Mode) -> Option<(&'a TaggedCache, V)> {
        if !matches!(mode, Mode::Run { .. }) {
            return None;
        }
        let cache = self.cache.or(crate::global::global())?;
        if self.site.keyed_tags.is_some() && !Self::reported(cache) {
            // `Site::near_answer` looked already, before the tags were built.
            return None;
        }
        let named = cache.named(self.site.identity, self.near_key()?, &self.tags)?;
        let mut answer = None;
        near_value(cache, &named, codec, &mut answer);
        Some((cache, answer?))
    }

    /// Ends a call answered by the near cache.
    fn finish_near<R>(&self, cache: &TaggedCache, mode: Mode, outcome: R) -> R {
        if !Self::reported(cache) {
            return outcome;
        }
        let mut report = self.report(mode, Instant::now());
        report.info.hit = true;
        if cache.hook().is_none() {
            return self.finish_with(cache, "", &mut report, outcome);
        }
        let key = self.key().unwrap_or_default();
        self.finish_with(cache, &key, &mut report, outcome)
    }

    /// The key of this call's entry: `key = ...`, or the one generated from the site and the
    /// arguments; `None` when the arguments could not be serialized.
    pub fn key(&self) -> Option<String> {
        match (&self.key, &self.args) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(args)) => Some(self.site.generated_key(args.as_str()?)),
            (None, None) => None,
        }
    }

    /// `lifetime` (or the cache's default) plus a random part of `jitter`; "never expires" stays so.
    fn stored_lifetime(&self, cache: &TaggedCache) -> Lifetime {
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
    fn writes_nothing(&self) -> bool {
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

    fn entry(&self) -> Option<CallEntry<'a>> {
        let cache = self.cache()?;
        let key = self.key()?;
        // The cache's own `get_with` has no identity: its entries are those of `get` and `set`.
        let function_tag =
            (!self.site.identity.is_empty()).then(|| cache.function_tag(self.site.identity));
        let keys = cache.entry_keys(&key, &self.tags, function_tag);
        Some(CallEntry { cache, key, keys })
    }

    fn report(&self, mode: Mode, started: Instant) -> Report {
        Report {
            counted: !matches!(mode, Mode::Refresh),
            started,
            info: CacheInfo {
                file: self.site.file,
                impl_type: self.site.impl_type,
                function_name: self.site.function_name,
                is_method: self.site.is_method,
                ..CacheInfo::default()
            },
        }
    }

    fn finish<R>(&self, entry: &CallEntry<'_>, report: &mut Report, outcome: R) -> R {
        self.finish_with(entry.cache, &entry.key, report, outcome)
    }

    /// Whether anyone looks at a call's report: the hook, the metrics or debug logging. When
    /// none does, a near hit builds none (and the clock is read once per call, not twice).
    fn reported(cache: &TaggedCache) -> bool {
        cache.hook().is_some() || metrics::ENABLED || tracing::enabled!(tracing::Level::DEBUG)
    }

    fn finish_with<R>(&self, cache: &TaggedCache, key: &str, report: &mut Report, outcome: R) -> R {
        if Self::reported(cache) {
            report.info.elapsed = report.started.elapsed();
        }
        if report.counted {
            let namespace = cache.namespace();
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
        if let Some(hook) = cache.hook() {
            report.info.function_args = self
                .args
                .as_ref()
                .and_then(JsonArgs::as_str)
                .unwrap_or_default()
                .to_owned();
            hook.call(key, &self.tags, &report.info, self.hook_userdata);
        }
        outcome
    }
}

/// What a computation waited for with no time limit gave: a task's outcome, or, for one on a
/// thread, the thread's.
fn joined<R>(waited: Result<Computed<R>, Timed<R>>) -> Computed<R> {
    waited.unwrap_or_else(Timed::join)
}

/// Fills `answer` with the decoded value `named`'s fresh near entry holds, if any, counted as
/// a near hit.
fn near_value<V, S: AsRef<str>>(
    cache: &TaggedCache,
    named: &Named<'_, S>,
    codec: &ValueCodec<V>,
    answer: &mut Option<V>,
) {
    let (Some(sharing), Some(near)) = (codec.sharing(), cache.near()) else {
        return;
    };
    near.answer_into(named, answer, |entry, answer| {
        if let NearValue::Decoded(kept) = entry.value() {
            (sharing.take)(kept.as_ref(), answer);
        }
    });
    if answer.is_some() {
        cache.count_near_hit();
    }
}

/// The outcome of a body run in the call, and the bytes to store.
fn computed_here<R: Outcome>(
    outcome: R,
    codec: &ValueCodec<R::Value>,
    cache: &TaggedCache,
) -> (R, Option<Vec<u8>>) {
    let bytes = encoded(codec, cache, &outcome);
    (outcome, bytes)
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
    /// A wait that began at `since` ended at `now`.
    fn waited(&mut self, since: Instant, now: Instant) {
        let waited = now.saturating_duration_since(since);
        self.info.lock_waited = self.info.lock_waited.saturating_add(waited);
    }

    /// A value was found: `section` is its value section.
    fn hit(&mut self, section: &[u8]) {
        self.info.hit = true;
        self.stored(section);
    }

    /// The value's size as stored, compressed if it was; the codec id is not counted.
    fn stored(&mut self, section: &[u8]) {
        self.info.serialized_size = section.len().saturating_sub(1);
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
