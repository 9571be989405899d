//! The two drivers: the only places where a flow's operations reach a backend. They differ by
//! one `.await`. After each operation that changes keys (whether or not it succeeded: a write
//! that timed out may have landed), the near cache drops what it kept of them, before the
//! caller gets the result.

use super::TaggedCache;
use crate::engine::{Flow, Progress};
use crate::error::BackendError;

impl TaggedCache {
    /// Runs `flow` to its end, blocking on each round trip.
    pub(crate) fn drive<F: Flow>(&self, mut flow: F) -> F::Output {
        let mut reply = None;
        loop {
            match flow.advance(reply.take()) {
                Progress::Done(output) => return output,
                Progress::Send => {
                    reply = Some(match flow.operation() {
                        Some(operation) => {
                            let verb = operation.verb();
                            let received = self.backend().execute(operation);
                            self.changed(&operation);
                            self.report_failure(verb, &received);
                            received
                        }
                        None => Err(BackendError::UnexpectedReply),
                    });
                }
            }
        }
    }

    /// Runs `flow` to its end, awaiting each round trip.
    pub(crate) async fn drive_async<F: Flow>(&self, mut flow: F) -> F::Output {
        let mut reply = None;
        loop {
            match flow.advance(reply.take()) {
                Progress::Done(output) => return output,
                Progress::Send => {
                    reply = Some(match flow.operation() {
                        Some(operation) => {
                            let verb = operation.verb();
                            let received = self.backend().execute_async(operation).await;
                            self.changed(&operation);
                            self.report_failure(verb, &received);
                            received
                        }
                        None => Err(BackendError::UnexpectedReply),
                    });
                }
            }
        }
    }
}
