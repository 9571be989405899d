//! The engine's logic, written once for sync and async callers (sans-IO).
//!
//! Every cache operation is a [`Flow`]: plain code that says "send this [`Operation`] to the
//! backend, then continue with its [`Reply`]", or "done". A flow never touches a connection,
//! never sleeps and never awaits; two small drivers (`TaggedCache::drive` and
//! `TaggedCache::drive_async`) feed it, one blocking and one async, and only they do I/O. The in-memory and disabled backends answer an operation at once; Redis turns it
//! into commands (`backend::redis::commands`).
//!
//! The decorated call's stampede-lock protocol is a flow with a few more actions (wait for
//! another caller, compute); it lives in `decorate::protocol`.

mod operation;
mod read;
mod read_many;
mod write;

use crate::error::BackendError;

pub(crate) use self::operation::{
    EntryWrite, Expiry, LockAttempt, ManyReply, Operation, ReadReply, Reply, Ttl,
};
pub(crate) use self::read::{Lookup, Payload, ReadFlow};
pub(crate) use self::read_many::ReadManyFlow;
pub(crate) use self::write::{CreateTagsFlow, WriteFlow};

/// What a flow wants next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress<T> {
    /// Send [`Flow::operation`]; then call [`Flow::advance`] with its reply.
    Send,
    /// Finished.
    Done(T),
}

/// A reply as a flow receives it: a backend error has already been reported by the driver, and
/// the flow decides what it means (a miss, a skipped write).
pub(crate) type Received = Result<Reply, BackendError>;

/// An operation's logic as a state machine. The drivers call [`Flow::advance`] (with `None` at
/// first), send [`Flow::operation`] whenever it answers [`Progress::Send`], and feed the reply
/// back, until it is [`Progress::Done`].
pub(crate) trait Flow {
    type Output;

    /// Moves on, with the reply to the operation sent last (`None`: nothing was sent since the
    /// last call, e.g. at the start).
    fn advance(&mut self, reply: Option<Received>) -> Progress<Self::Output>;

    /// The operation to send now; `None` only if asked out of turn.
    fn operation(&self) -> Option<Operation<'_>>;
}

impl<F: Flow + ?Sized> Flow for &mut F {
    type Output = F::Output;

    fn advance(&mut self, reply: Option<Received>) -> Progress<F::Output> {
        (**self).advance(reply)
    }

    fn operation(&self) -> Option<Operation<'_>> {
        (**self).operation()
    }
}

/// One operation on its own, its reply as the output.
pub(crate) struct Single<'a> {
    operation: Operation<'a>,
    sent: bool,
}

impl<'a> Single<'a> {
    pub(crate) fn new(operation: Operation<'a>) -> Self {
        Self {
            operation,
            sent: false,
        }
    }
}

impl Flow for Single<'_> {
    type Output = Received;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Received> {
        match reply {
            Some(reply) => Progress::Done(reply),
            // Advanced again without the reply it asked for: a bug in its driver.
            None if self.sent => Progress::Done(Err(BackendError::Internal(
                "an operation was sent but its reply was not handed back",
            ))),
            None => {
                self.sent = true;
                Progress::Send
            }
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        Some(self.operation)
    }
}
