//! Rate-limited warnings: one of a kind per interval, with the number held back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::now_ms;

/// Lets one warning of a kind through per interval and counts the ones it held back.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    interval_ms: u64,
    next_ms: AtomicU64,
    held_back: AtomicU64,
}

impl WarnLimiter {
    pub(crate) const fn new(interval: Duration) -> Self {
        Self {
            interval_ms: interval.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being how many were held back before it.
    pub(crate) fn permit(&self) -> Option<u64> {
        let now = now_ms();
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_warnings_are_held_back_and_counted() {
        let limiter = WarnLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.permit(), Some(0));
        assert_eq!(limiter.permit(), None);
        assert_eq!(limiter.permit(), None);
        assert_eq!(limiter.held_back.load(Ordering::Relaxed), 2);
    }
}
