//! A monotonic clock in milliseconds that fits in an atomic.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process: a clock that fits in an atomic.
pub(crate) fn now_ms() -> u64 {
    ms_at(Instant::now())
}

/// `instant` on the same clock, rounded down (0 for any instant before the first call).
pub(crate) fn ms_at(instant: Instant) -> u64 {
    let since = instant.saturating_duration_since(start());
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
