//! Optional metrics through the [`metrics`](https://docs.rs/metrics) facade (cargo feature
//! `metrics`): whatever recorder the application installs (Prometheus, StatsD, OpenTelemetry
//! bridges) sees rtc's calls without a hook.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `rtc_hits_total`, `rtc_misses_total` | counter | `namespace`, `function` (`get`, and `get_many` per entry of a batch, for the low-level API) |
//! | `rtc_hit_seconds`, `rtc_miss_seconds` | histogram | `namespace`, `function` |
//! | `rtc_lock_waits_total` | counter | `namespace`, `function` |
//! | `rtc_errors_total` | counter | `namespace`, `operation`, `kind` |
//!
//! Without the feature every function here is empty and inlined away: the disabled path costs
//! nothing. With it and no recorder installed, a call costs the label strings.

use std::time::Duration;

/// Times a call when metrics are on; nothing at all otherwise.
#[derive(Clone, Copy)]
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    #[inline]
    pub(crate) fn elapsed(self) -> Duration {
        #[cfg(feature = "metrics")]
        return self.started.elapsed();
        #[cfg(not(feature = "metrics"))]
        Duration::ZERO
    }
}

/// True when the `metrics` feature records anything (so callers may skip measuring).
pub(crate) const ENABLED: bool = cfg!(feature = "metrics");

/// A call answered (`hit`) or computed, and how long it took.
#[inline]
pub(crate) fn call(namespace: &str, function: &'static str, hit: bool, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("namespace", namespace.to_owned()),
            ("function", function.to_owned()),
        ];
        if hit {
            metrics::counter!("rtc_hits_total", &labels).increment(1);
            metrics::histogram!("rtc_hit_seconds", &labels).record(elapsed.as_secs_f64());
        } else {
            metrics::counter!("rtc_misses_total", &labels).increment(1);
            metrics::histogram!("rtc_miss_seconds", &labels).record(elapsed.as_secs_f64());
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (namespace, function, hit, elapsed);
}

/// A caller started waiting for another caller's computation.
#[inline]
pub(crate) fn lock_wait(namespace: &str, function: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "rtc_lock_waits_total",
        "namespace" => namespace.to_owned(),
        "function" => function
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (namespace, function);
}

/// A backend or codec failure, by operation (`read`, `write`, `lock` ...) and kind.
#[inline]
pub(crate) fn error(namespace: &str, operation: &'static str, kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "rtc_errors_total",
        "namespace" => namespace.to_owned(),
        "operation" => operation,
        "kind" => kind
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (namespace, operation, kind);
}
