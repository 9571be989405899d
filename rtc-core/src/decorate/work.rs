//! The function's body as a driver runs it: in the call ([`Here`]), or, for a function whose
//! computation may outlive its call (owned arguments), also in the background ([`Detached`]).

use std::future::Future;

use super::background::{Background, Timed};
use super::outcome::Outcome;
use crate::cache::flights::Leader;

/// What the blocking driver can do with the body.
pub(super) trait Blocking<R: Outcome>: Detaches + Sized {
    /// Runs it in the call.
    fn run(self) -> R;
    /// Refreshes the entry with it in the background, as the leader of its flight.
    fn refresh(self, background: Background<R::Value>, leader: Leader);
    /// Starts it on its own, to wait for it with a time limit; `Err(self)` when it cannot be.
    fn timed(self, background: Background<R::Value>) -> Result<Timed<R>, Self>;
}

/// What the async driver can do with the body.
pub(super) trait Awaited<R: Outcome>: Detaches + Sized {
    type Future: Future<Output = R>;
    /// Runs it in the call.
    fn run(self) -> Self::Future;
    /// Refreshes the entry with it in the background, as the leader of its flight.
    fn refresh(self, background: Background<R::Value>, leader: Leader);
    /// Starts it on its own, to wait for it with a time limit; `Err(self)` when it cannot be
    /// (no runtime).
    fn timed(self, background: Background<R::Value>) -> Result<Timed<R>, Self>;
}

/// A body that borrows from its call: it runs in the call only. Its call has no
/// `stale_while_revalidate` or `timeout` (`Windows::resolve`), so it is never asked for more.
pub(super) struct Here<F>(pub F);

impl<R: Outcome, F: FnOnce() -> R> Blocking<R> for Here<F> {
    fn run(self) -> R {
        (self.0)()
    }

    fn refresh(self, _: Background<R::Value>, _: Leader) {}

    fn timed(self, _: Background<R::Value>) -> Result<Timed<R>, Self> {
        Err(self)
    }
}

impl<R: Outcome, F: Future<Output = R>> Awaited<R> for Here<F> {
    type Future = F;

    fn run(self) -> F {
        self.0
    }

    fn refresh(self, _: Background<R::Value>, _: Leader) {}

    fn timed(self, _: Background<R::Value>) -> Result<Timed<R>, Self> {
        Err(self)
    }
}

/// A body that owns what it needs: it may run on a thread or a task of its own.
pub(super) struct Detached<F>(pub F);

impl<R, F> Blocking<R> for Detached<F>
where
    R: Outcome + Send + 'static,
    R::Value: Send + Sync + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    fn run(self) -> R {
        (self.0)()
    }

    fn refresh(self, background: Background<R::Value>, leader: Leader) {
        background.refresh(leader, self.0);
    }

    fn timed(self, background: Background<R::Value>) -> Result<Timed<R>, Self> {
        background.timed(self.0).map_err(Detached)
    }
}

impl<R, F> Awaited<R> for Detached<F>
where
    R: Outcome + Send + 'static,
    R::Value: Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
{
    type Future = F;

    fn run(self) -> F {
        self.0
    }

    fn refresh(self, background: Background<R::Value>, leader: Leader) {
        background.refresh_async(leader, self.0);
    }

    fn timed(self, background: Background<R::Value>) -> Result<Timed<R>, Self> {
        background.timed_async(self.0).map_err(Detached)
    }
}

/// Whether a body may outlive its call: what turns `stale_while_revalidate` and `timeout` on.
pub(super) trait Detaches {
    const DETACHES: bool;
}

impl<F> Detaches for Here<F> {
    const DETACHES: bool = false;
}

impl<F> Detaches for Detached<F> {
    const DETACHES: bool = true;
}
