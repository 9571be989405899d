//! The layer's metrics (feature `metrics`), through the `metrics` facade: responses per route
//! and cache status. rtc's own metrics (hits, misses, lock waits, errors) come on top.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `rtc_http_responses_total` | counter | `route` ([`route_name`](crate::ResponseCacheBuilder::route_name)), `cache` (`hit`, `miss`, `stale`, `pass`) |

use crate::respond::CacheStatus;

/// Counts one response of `route`.
#[cfg(feature = "metrics")]
pub(crate) fn count(route: String, status: CacheStatus) {
    metrics::counter!(
        "rtc_http_responses_total",
        "route" => route,
        "cache" => status.as_str(),
    )
    .increment(1);
}

/// Without the feature: nothing.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn count(_route: (), _status: CacheStatus) {}
