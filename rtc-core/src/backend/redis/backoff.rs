//! Back-off after connection failures: an outage costs callers a miss, not a connect timeout.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::now_ms;

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Skips a backend for a growing pause after each consecutive connection failure (100 ms,
/// doubling, at most 5 s), so that an outage costs callers nothing but a miss. The first call after
/// a pause tries the backend again; a success ends the back-off.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: AtomicU32,
    skip_until_ms: AtomicU64,
}

impl Backoff {
    /// False while the backend is being skipped.
    pub(crate) fn allows(&self) -> bool {
        // No pause (the usual case) needs no clock.
        let until = self.skip_until_ms.load(Ordering::Relaxed);
        until == 0 || until <= now_ms()
    }

    pub(crate) fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.skip_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Records a connection failure; returns the pause in force. Failures of calls that were
    /// already under way when a pause began do not lengthen it: only a failure after a pause
    /// (the backend was tried again and is still down) doubles the next one.
    pub(crate) fn failed(&self) -> Duration {
        let now = now_ms();
        let skip_until = self.skip_until_ms.load(Ordering::Relaxed);
        if skip_until > now {
            return Duration::from_millis(skip_until - now);
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).min(16);
        let pause = FIRST_PAUSE.saturating_mul(1 << failures).min(LONGEST_PAUSE);
        let pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        self.skip_until_ms
            .store(now.saturating_add(pause_ms), Ordering::Relaxed);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_pauses_grow_and_a_success_ends_them() {
        let backoff = Backoff::default();
        assert!(backoff.allows());
        assert_eq!(backoff.failed(), Duration::from_millis(100));
        assert!(!backoff.allows());
        // Failures during the pause (calls already under way) do not lengthen it.
        assert!(backoff.failed() <= Duration::from_millis(100));
        backoff.skip_until_ms.store(0, Ordering::Relaxed);
        assert_eq!(backoff.failed(), Duration::from_millis(200));
        for _ in 0..20 {
            backoff.skip_until_ms.store(0, Ordering::Relaxed);
            backoff.failed();
        }
        backoff.skip_until_ms.store(0, Ordering::Relaxed);
        assert_eq!(backoff.failed(), LONGEST_PAUSE);
        backoff.succeeded();
        assert!(backoff.allows());
    }
}
