//! What the drivers of a call do that its protocol cannot, blocking ([`BlockingIo`]) or
//! awaited ([`AsyncIo`]): round trips and waits for another caller's flight ([`Io`]), and the
//! body's runs ([`Runs`]).
//!
//! The drivers' loop is written once, as an `async fn` generic over these effects
//! (`Call::protocol`). The async driver awaits it; the blocking driver runs it with [`now`], one
//! poll with a waker that nothing wakes. That poll always finishes the loop: the loop awaits
//! nothing but effects, and every effect of [`BlockingIo`] is done before it returns, as a
//! [`Ready`] future. No executor is entered (`futures_executor::block_on` refuses to nest), so a
//! blocking call runs wherever a plain function does, a background refresh's `block_on`
//! included.
//!
//! The other design, a shared function from each yield to an action that both drivers perform
//! with their own primitives, keeps two loops, each with its own match over the actions and
//! its own way of feeding their results back; here the match is written once. What it costs,
//! counted by cachegrind on the in-memory backend: a hit that runs the loop, 1 % more
//! instructions blocking (about 260 of 23,700) and 0.2 % awaited; a near hit, which returns
//! before the loop, none; an async call's future, 16 bytes.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::background::{Background, Computed, Timed};
use super::outcome::Outcome;
use super::work::{Awaited, Blocking};
use crate::cache::flights::{Flight, Landing, Leader};
use crate::cache::TaggedCache;
use crate::engine::{Operation, Received};

/// How a driver meets the outside world: round trips, and waits for this process's leader.
pub(super) trait Io {
    /// True for the blocking driver: a call it abandons holding a Redis lock releases the lock
    /// on the spot, rather than on a task of the runtime.
    const BLOCKING: bool;

    /// Sends `operation` and returns what came back.
    fn round_trip(
        &self,
        cache: &TaggedCache,
        operation: Option<Operation<'_>>,
    ) -> impl Future<Output = Received>;

    /// Waits until `flight` lands (its landing) or `deadline` passes (`None`).
    fn follow(&self, flight: &Flight, deadline: Instant) -> impl Future<Output = Option<Landing>>;
}

/// How a driver runs a body `W` whose outcome is `R`.
pub(super) trait Runs<R: Outcome, W>: Io {
    /// Runs the body in the call.
    fn run(&self, work: W) -> impl Future<Output = R>;

    /// Starts the body on its own, to wait for it with a time limit; `Err(work)` when it cannot
    /// be, for the call to run it.
    fn start(&self, work: W, background: Background<R::Value>) -> Result<Timed<R>, W>;

    /// Waits up to `limit` for a started body: its outcome, or `Err` while it still runs.
    fn wait(
        &self,
        timed: Timed<R>,
        limit: Duration,
    ) -> impl Future<Output = Result<Computed<R>, Timed<R>>>;

    /// Waits for a started body until it is done; a panic in it goes on in the caller.
    fn join(&self, timed: Timed<R>) -> impl Future<Output = Computed<R>>;

    /// Refreshes the entry with the body in the background, `leader` of its flight.
    fn refresh(&self, work: W, background: Background<R::Value>, leader: Leader);
}

/// The blocking driver's effects: each is done when its method returns.
pub(super) struct BlockingIo;

// The `Ready` futures say, in the types, that each effect is done when its method returns:
// what `now` relies on.
#[allow(refining_impl_trait)]
impl Io for BlockingIo {
    const BLOCKING: bool = true;

    fn round_trip(&self, cache: &TaggedCache, operation: Option<Operation<'_>>) -> Ready<Received> {
        ready(cache.round_trip(operation))
    }

    fn follow(&self, flight: &Flight, deadline: Instant) -> Ready<Option<Landing>> {
        ready(flight.wait(deadline))
    }
}

#[allow(refining_impl_trait)]
impl<R: Outcome, W: Blocking<R>> Runs<R, W> for BlockingIo {
    fn run(&self, work: W) -> Ready<R> {
        ready(work.run())
    }

    fn start(&self, work: W, background: Background<R::Value>) -> Result<Timed<R>, W> {
        work.timed(background)
    }

    fn wait(&self, timed: Timed<R>, limit: Duration) -> Ready<Result<Computed<R>, Timed<R>>> {
        ready(timed.wait(limit))
    }

    fn join(&self, timed: Timed<R>) -> Ready<Computed<R>> {
        ready(timed.join())
    }

    fn refresh(&self, work: W, background: Background<R::Value>, leader: Leader) {
        work.refresh(background, leader);
    }
}

/// The async driver's effects: futures, awaited by the caller's executor.
pub(super) struct AsyncIo;

impl Io for AsyncIo {
    const BLOCKING: bool = false;

    fn round_trip(
        &self,
        cache: &TaggedCache,
        operation: Option<Operation<'_>>,
    ) -> impl Future<Output = Received> {
        cache.round_trip_async(operation)
    }

    fn follow(&self, flight: &Flight, deadline: Instant) -> impl Future<Output = Option<Landing>> {
        flight.wait_async(deadline)
    }
}

impl<R: Outcome, W: Awaited<R>> Runs<R, W> for AsyncIo {
    fn run(&self, work: W) -> impl Future<Output = R> {
        work.run()
    }

    fn start(&self, work: W, background: Background<R::Value>) -> Result<Timed<R>, W> {
        work.timed(background)
    }

    fn wait(
        &self,
        timed: Timed<R>,
        limit: Duration,
    ) -> impl Future<Output = Result<Computed<R>, Timed<R>>> {
        timed.wait_async(Some(limit))
    }

    fn join(&self, timed: Timed<R>) -> impl Future<Output = Computed<R>> {
        // Only a body on a thread (never the async driver's) is not awaited: joined then.
        timed
            .wait_async(None)
            .map(|waited| waited.unwrap_or_else(Timed::join))
    }

    fn refresh(&self, work: W, background: Background<R::Value>, leader: Leader) {
        work.refresh(background, leader);
    }
}

/// The output of a future that is ready on its first poll: the blocking driver's loop, whose
/// every effect is [`BlockingIo`]'s. Its waker wakes nothing, as nothing is left to wait for.
/// The future is polled where it was made (`pin!` at the call): moved in, a loop's state would
/// be copied on every call.
pub(super) fn now<F: Future>(future: Pin<&mut F>) -> F::Output {
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("rtc: a blocking driver's effect did not finish at once"),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::{pin, Pin};
    use std::task::{Context, Poll};

    use super::now;

    /// Pending on its first poll, then ready: what no blocking effect may be.
    struct Later(bool);

    impl Future for Later {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
            if std::mem::replace(&mut self.0, true) {
                return Poll::Ready(());
            }
            context.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_future_of_ready_steps_gives_its_output_on_the_first_poll() {
        let output = now(pin!(async {
            let mut sum = 0;
            for step in 1..=3 {
                sum += std::future::ready(step).await;
            }
            sum
        }));
        assert_eq!(output, 6);
    }

    #[test]
    #[should_panic(expected = "did not finish at once")]
    fn a_future_that_waits_is_a_bug_not_a_hang() {
        now(pin!(Later(false)));
    }
}
