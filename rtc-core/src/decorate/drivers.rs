//! The two drivers of a call's protocol, blocking ([`Call::drive`]) and async
//! ([`Call::drive_async`]): they alone make round trips, wait for other callers and run the
//! function's body.

use std::time::{Duration, Instant};

use super::background::{Background, Computed, Timed};
use super::call::{Call, CallEntry};
use super::outcome::{encoded, Outcome, ValueCodec};
use super::protocol::{CallFlow, Mode, Yield};
use super::report::Report;
use super::stale::Windows;
use super::work::{Awaited, Blocking, Detaches};
use crate::cache::TaggedCache;
use crate::engine::{Progress, Single};
use crate::format::Observed;
use crate::near::Named;

/// A call's protocol, owned by a driver. If the driver stops before the protocol ends (the
/// function panicked, or the future was dropped) while it holds a Redis lock, the lock is
/// released at once, so that waiters in other processes do not wait for its expiry.
pub(super) struct Driven<'a, V> {
    pub(super) cache: &'a TaggedCache,
    pub(super) flow: CallFlow<'a, V, TaggedCache>,
    pub(super) blocking: bool,
    /// The time of the first step, read when the call started (one clock read fewer).
    pub(super) first_step: Option<Instant>,
}

impl<V> Driven<'_, V> {
    /// The time of the next step: the call's start for the first, the clock's after that.
    fn now(&mut self) -> Instant {
        self.first_step.take().unwrap_or_else(Instant::now)
    }

    /// Steps the protocol, blocking on each round trip it asks for, until it yields.
    pub(super) fn step(&mut self) -> Yield<V> {
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
    /// The blocking driver of a call's protocol: it sends what the protocol asks for, and
    /// does what it yields: waits for a flight, runs the body (with a time limit, on a thread
    /// of its own), hands a late body over, starts a refresh, returns.
    pub(super) fn drive<R: Outcome, W: Blocking<R>>(
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
                    let background = || self.background(&entry, &codec, &call.flow);
                    match timed(work, limit, background, W::timed) {
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
    pub(super) async fn drive_async<R: Outcome, W: Awaited<R>>(
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
                    let background = || self.background(&entry, &codec, &call.flow);
                    match timed(work, limit, background, W::timed) {
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
}

/// What a computation waited for with no time limit gave: a task's outcome, or, for one on a
/// thread, the thread's.
fn joined<R>(waited: Result<Computed<R>, Timed<R>>) -> Computed<R> {
    waited.unwrap_or_else(Timed::join)
}

/// The body started on its own, to wait for it with `limit`, when the protocol gives a time
/// limit and the body can be started so (`start`, the driver's own `timed`); `Err(work)` to
/// run it in the call.
fn timed<W, R: Outcome>(
    work: W,
    limit: Option<Duration>,
    background: impl FnOnce() -> Background<R::Value>,
    start: impl FnOnce(W, Background<R::Value>) -> Result<Timed<R>, W>,
) -> Result<(Timed<R>, Duration), W> {
    match limit {
        Some(limit) => start(work, background()).map(|timed| (timed, limit)),
        None => Err(work),
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
