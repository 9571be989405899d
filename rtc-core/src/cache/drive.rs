//! The two drivers: the only places where a flow's operations reach a backend. They differ by
//! one `.await`. After each operation that changes keys (whether or not it succeeded: a write
//! that timed out may have landed), the near cache drops what it kept of them, before the
//! caller gets the result.

use std::future::Future;

use super::TaggedCache;
use crate::backend::Backend;
use crate::engine::{Flow, Operation, Progress, Received};
use crate::error::BackendError;

/// What a flow that asks for a round trip without naming an operation gets instead of a reply.
const NO_OPERATION: &str = "a flow asked for a round trip without an operation to send";

impl TaggedCache {
    /// Runs `flow` to its end, blocking on each round trip.
    pub(crate) fn drive<F: Flow>(&self, mut flow: F) -> F::Output {
        let mut reply = None;
        loop {
            match flow.advance(reply.take()) {
                Progress::Done(output) => return output,
                Progress::Send => reply = Some(self.round_trip(flow.operation())),
            }
        }
    }

    /// Runs `flow` to its end, awaiting each round trip.
    pub(crate) async fn drive_async<F: Flow>(&self, mut flow: F) -> F::Output {
        let mut reply = None;
        loop {
            match flow.advance(reply.take()) {
                Progress::Done(output) => return output,
                Progress::Send => reply = Some(self.round_trip_async(flow.operation()).await),
            }
        }
    }

    /// Sends the operation a flow asked for, blocking, and reports a failure. A flow that asks
    /// for a round trip with nothing to send is a bug in rtc: reported as one, and answered
    /// with an error, so that the call goes on without the cache.
    pub(crate) fn round_trip(&self, operation: Option<Operation<'_>>) -> Received {
        let Some(operation) = operation else {
            return self.internal_error(NO_OPERATION);
        };
        let received = self.backend().execute(operation);
        self.received(&operation, received)
    }

    /// Async twin of [`TaggedCache::round_trip`].
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice in its future, which a hit moves"
    )]
    pub(crate) fn round_trip_async<'c, 'o>(
        &'c self,
        operation: Option<Operation<'o>>,
    ) -> impl Future<Output = Received> + Send + use<'c, 'o> {
        async move {
            let Some(operation) = operation else {
                return self.internal_error(NO_OPERATION);
            };
            // Redis's future awaited in place, not through `Backend::execute_async`'s `Either`:
            // one move of it fewer per round trip.
            let received = match self.backend() {
                Backend::Redis(store) => store.execute_async(operation).await,
                backend => backend.execute(operation),
            };
            self.received(&operation, received)
        }
    }

    /// What both drivers do with a reply: the near cache drops what `operation` changed (also
    /// when it failed: a write that timed out may have landed), and a failure is reported.
    fn received(&self, operation: &Operation<'_>, received: Received) -> Received {
        self.changed(operation);
        self.report_failure(operation.verb(), &received);
        received
    }

    /// Reports a bug in rtc (`what` went wrong), and fails the operation with it.
    fn internal_error(&self, what: &'static str) -> Received {
        let error = Err(BackendError::Internal(what));
        self.report_failure("internal", &error);
        error
    }
}
