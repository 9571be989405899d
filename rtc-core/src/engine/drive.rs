//! The two drivers: the only places where a flow's operations reach a backend. They differ by
//! one `.await`.

use super::{Flow, Progress};
use crate::backend::BackendError;
use crate::cache::TaggedCache;

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
