//! The two drivers of a call's protocol, blocking ([`Call::drive`]) and async
//! ([`Call::drive_async`]): they alone make round trips, wait for other callers and run the
//! function's body. What they do for each [`Yield`] is written once, in [`Call::protocol`], an
//! `async fn` generic over the effects (`effects.rs`): the async driver awaits it, the blocking
//! driver runs it with `effects::now`, every effect of its being done before it returns.

use std::future::Future;
use std::pin::pin;
use std::time::Instant;

use super::background::{Background, Computed, Timed};
use super::call::{Call, CallEntry};
use super::effects::{self, AsyncIo, BlockingIo, Io, Runs};
use super::outcome::{encoded, Outcome, ValueCodec};
use super::protocol::{CallFlow, Mode, Yield};
use super::stale::Windows;
use super::work::{Awaited, Blocking, Detaches};
use crate::cache::TaggedCache;
use crate::engine::{Progress, Single};
use crate::format::Observed;

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

    /// Steps the protocol, making each round trip it asks for with `io`, until it yields.
    pub(super) async fn next(&mut self, io: &impl Io) -> Yield<V> {
        // No reply is held across the round trip: the future keeps and drops none.
        let now = self.now();
        let mut progress = self.flow.step(now, None);
        loop {
            match progress {
                Progress::Done(output) => return output,
                Progress::Send => {
                    let reply = io.round_trip(self.cache, self.flow.operation()).await;
                    let now = self.now();
                    progress = self.flow.step(now, Some(reply));
                }
            }
        }
    }

    /// [`Driven::next`], blocking on each round trip.
    pub(super) fn step(&mut self) -> Yield<V> {
        effects::now(pin!(self.next(&BlockingIo)))
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

/// How a call begins, before its protocol.
#[allow(
    clippy::large_enum_variant,
    reason = "matched as soon as it is returned; a box would cost every call an allocation"
)]
enum Opening<'a, R> {
    /// The call cannot use the cache (a zero lifetime, no cache, an unserializable key): the
    /// body runs uncached.
    Uncached,
    /// The near cache answered (counted and reported).
    Answered(R),
    /// The protocol runs on this entry, for a call that started at this instant (its report is
    /// made where the protocol is: each move of a report is a call to `memcpy`).
    Protocol(CallEntry<'a>, Instant),
}

impl<'a> Call<'a> {
    /// The blocking driver of a call's protocol: [`Call::protocol`] with effects that block.
    pub(super) fn drive<R: Outcome, W: Blocking<R>>(
        &self,
        mode: Mode,
        codec: ValueCodec<R::Value>,
        work: W,
    ) -> R {
        let (entry, started) = match self.opening(mode, &codec) {
            Opening::Uncached => return work.run(),
            Opening::Answered(outcome) => return outcome,
            Opening::Protocol(entry, started) => (entry, started),
        };
        let mut call = self.driven::<_, W>(&entry, &codec, mode, started, BlockingIo::BLOCKING);
        let protocol = pin!(self.protocol(&BlockingIo, &entry, &codec, &mut call, work));
        effects::now(protocol)
    }

    /// The async driver of a call's protocol: [`Call::protocol`] with effects that await.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future, which a hit moves"
    )]
    pub(super) fn drive_async<R: Outcome, W: Awaited<R>>(
        self,
        mode: Mode,
        codec: ValueCodec<R::Value>,
        work: W,
    ) -> impl Future<Output = R> + use<'a, R, W> {
        async move {
            let (entry, started) = match self.opening(mode, &codec) {
                Opening::Uncached => return work.run().await,
                Opening::Answered(outcome) => return outcome,
                Opening::Protocol(entry, started) => (entry, started),
            };
            let mut call = self.driven::<_, W>(&entry, &codec, mode, started, AsyncIo::BLOCKING);
            self.protocol(&AsyncIo, &entry, &codec, &mut call, work)
                .await
        }
    }

    /// Whether the call runs its protocol: not without a cache or a key, nor when the near
    /// cache holds its value (the near hit's fast path, before any key is derived).
    // A near hit's whole path: inlined into each driver, as it was before they shared it.
    #[inline]
    fn opening<R: Outcome>(&self, mode: Mode, codec: &ValueCodec<R::Value>) -> Opening<'a, R> {
        if self.writes_nothing() {
            return Opening::Uncached;
        }
        if let Some((cache, value)) = self.near_hit(codec, mode) {
            return Opening::Answered(self.finish_near(cache, mode, R::from_cached(value)));
        }
        let started = Instant::now();
        match self.entry() {
            Some(entry) => Opening::Protocol(entry, started),
            None => Opening::Uncached,
        }
    }

    /// The drivers' loop: it steps `call`'s protocol and does what it yields with `io`'s
    /// effects: waits for a flight, runs the body (with a time limit, on its own), hands a late
    /// body over, starts a refresh, returns. A driver that stops before the end (the body
    /// panicked, the future was dropped) drops `call`, which releases a lock it holds.
    ///
    /// The driver makes `call`: an `async fn` keeps its arguments beside its locals, so what it is
    /// made of, moved in to make it here, would take room twice in an async call's future.
    async fn protocol<R: Outcome, W: Detaches, E: Runs<R, W>>(
        &self,
        io: &E,
        entry: &CallEntry<'_>,
        codec: &ValueCodec<R::Value>,
        call: &mut Driven<'_, R::Value>,
        work: W,
    ) -> R {
        let mut body = Body::Ready(work);
        loop {
            body = match (call.next(io).await, body) {
                (Yield::Follow(flight, deadline), body) => {
                    call.flow.landed(io.follow(&flight, deadline).await);
                    body
                }
                (Yield::Compute(limit), Body::Ready(work)) => {
                    let started = match limit {
                        Some(limit) => io
                            .start(work, self.background(entry, codec, &call.flow))
                            .map(|timed| (timed, limit)),
                        None => Err(work),
                    };
                    match started {
                        Ok((timed, limit)) => call.waited(io.wait(timed, limit).await),
                        Err(work) => {
                            call.done(computed_here(io.run(work).await, codec, entry.cache))
                        }
                    }
                }
                (Yield::HandOver(observed), Body::Running(timed)) => {
                    match call.hand_over(timed, observed) {
                        Ok(body) => body,
                        Err(timed) => call.done(io.join(timed).await),
                    }
                }
                (Yield::Join, Body::Running(timed)) => {
                    let (outcome, _) = io.join(timed).await;
                    return self.finish(entry, &mut call.flow.report, outcome);
                }
                (Yield::Revalidate(value, leader), Body::Ready(work)) => {
                    io.refresh(work, self.background(entry, codec, &call.flow), *leader);
                    return self.finish(entry, &mut call.flow.report, R::from_cached(value));
                }
                (step, body) => {
                    return match settled(step, body) {
                        Settled::Return(outcome) => {
                            self.finish(entry, &mut call.flow.report, outcome)
                        }
                        Settled::Run(work) => io.run(work).await,
                        Settled::Join(timed) => io.join(timed).await.0,
                    }
                }
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

    /// This call's protocol on `entry` (filling the near cache when the call keeps its value
    /// there), owned by a driver (`blocking` for the sync one) that runs the body as `W` does;
    /// the call started at `started`.
    fn driven<'c, V, W: Detaches>(
        &'c self,
        entry: &'c CallEntry<'_>,
        codec: &'c ValueCodec<V>,
        mode: Mode,
        started: Instant,
        blocking: bool,
    ) -> Driven<'c, V> {
        let named = self.named(entry, codec, mode);
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
            self.report(mode, started),
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

/// The outcome of a body run in the call, and the bytes to store.
fn computed_here<R: Outcome>(
    outcome: R,
    codec: &ValueCodec<R::Value>,
    cache: &TaggedCache,
) -> (R, Option<Vec<u8>>) {
    let bytes = encoded(codec, cache, &outcome);
    (outcome, bytes)
}
