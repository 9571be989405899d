//! Stale values in the protocol: one returned at once (`stale_while_revalidate`), or one
//! returned instead of what a failed or late computation gave (`stale_if_error`, `timeout`).
//!
//! A value returned instead is read again after the computation, so that an invalidation or a
//! delete that landed while the function ran is seen: only an entry whose tags are still
//! current is returned.

use std::time::Duration;

use super::{CallFlow, Counted, Host, Mode, Next, State, Yield};
use crate::cache::flights::{Joined, Landing};
use crate::engine::{Lookup, Payload};
use crate::format::Observed;

/// True when a non-zero `window` covers an entry `overdue` past its lifetime.
pub(super) fn within(window: Duration, overdue: Duration) -> bool {
    !window.is_zero() && overdue <= window
}

impl<'a, V, H: Host> CallFlow<'a, V, H> {
    /// The first lookup found the entry past its lifetime: within `stale_while_revalidate`
    /// (and decodable), it is returned at once, and refreshed unless this process computes it
    /// already: the call joins the entry's flight here, so that only its leader has the driver
    /// start a refresh (one thread or task per refresh, not per stale hit). Otherwise the
    /// lookup goes on as it is.
    // The lookup handed back is the one handed in, once per call: not worth a box.
    #[allow(clippy::result_large_err)]
    pub(super) fn stale_at_once(
        &mut self,
        payload: Payload,
        observed: Observed,
        overdue: Duration,
    ) -> Result<Next<'a, V>, Lookup> {
        if within(self.windows.while_revalidate, overdue) {
            if let Some(value) = self.host.decode(self.codec, &payload) {
                self.report.hit(&payload);
                self.served_stale();
                let output = match self.host.join_flight(&self.keys.entry) {
                    Joined::Leader(leader) => Yield::Revalidate(value, Box::new(leader)),
                    // A refresh, or a `lock = true` leader, computes the entry already.
                    Joined::Follower(_) => Yield::Cached(value),
                };
                return Ok(Next::Yield(output, State::Finished));
            }
        }
        Err(Lookup::Stale(payload, observed, overdue))
    }

    /// How long the driver may wait for the computation before returning a stale value
    /// instead (`timeout`): only when a read found one.
    pub(super) fn compute_timeout(&self) -> Option<Duration> {
        match self.mode {
            Mode::Run { .. } if self.stale_seen => self.windows.timeout,
            _ => None,
        }
    }

    /// After a failure, a stale value may stand in: read the entry again.
    pub(super) fn falls_back(&self) -> bool {
        matches!(self.mode, Mode::Run { .. }) && self.failed && self.stale_seen && !self.fell_back
    }

    /// What the read after a failure found: a value to return instead (also to followers),
    /// or nothing.
    pub(super) fn fell_back(&mut self, lookup: Lookup) -> Next<'a, V> {
        let instead = match lookup {
            Lookup::Hit(payload, observed) => self.host.decode(self.codec, &payload).map(|value| {
                (
                    value,
                    Landing::new(Some(payload.into_vec()), Some(observed)),
                )
            }),
            Lookup::Stale(payload, observed, overdue) if within(self.windows.if_error, overdue) => {
                self.host.decode(self.codec, &payload).map(|value| {
                    self.served_stale();
                    (value, Landing::stale(payload.into_vec(), observed))
                })
            }
            _ => None,
        };
        match instead {
            Some((value, landing)) => {
                if self.leader.is_some() {
                    self.landing = Some(landing);
                }
                self.land();
                Next::Yield(Yield::Instead(value), State::Finished)
            }
            None => self.finish(),
        }
    }

    /// Tells the hook and the counters that a stale value was returned.
    pub(super) fn served_stale(&mut self) {
        self.report.info.stale = true;
        self.host.count(Counted::StaleHit);
    }
}
