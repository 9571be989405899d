//! Virtual time for tests of the call protocol: an origin read once per thread, then moved only
//! by the test ([`advance`]), so that a test of deadlines and waits never sleeps and always
//! sees the same times.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The virtual time now: this thread's origin, plus what [`advance`] added. (`Instant` has no
/// constructor but the clock, so the origin is the clock's time when first asked; where it
/// lies does not matter, only how it moves.)
pub(crate) fn now() -> Instant {
    NOW.with(|now| {
        let instant = now.get().unwrap_or_else(Instant::now);
        now.set(Some(instant));
        instant
    })
}

/// Moves this thread's virtual time `by` forward.
pub(crate) fn advance(by: Duration) {
    let later = now() + by;
    NOW.with(|now| now.set(Some(later)));
}
