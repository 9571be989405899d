//! A monotonic clock in milliseconds that fits in an atomic.

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the first call in this process: a clock that fits in an atomic.
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}
