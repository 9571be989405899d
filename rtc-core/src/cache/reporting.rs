//! Fail-open reporting: every backend failure becomes a miss or a skipped write, one counted
//! error and a rate-limited warning; hits, misses and writes are counted here.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::TaggedCache;
use crate::engine::{Lookup, Payload, Reply};
use crate::error::BackendError;
use crate::error::CacheMiss;
use crate::lifetime::Lifetime;
use crate::metrics;

impl TaggedCache {
    /// Reports a failed operation (the drivers call this for every reply).
    pub(crate) fn report_failure(&self, verb: &'static str, reply: &Result<Reply, BackendError>) {
        if let Err(error) = reply {
            self.failed(verb, error);
        }
    }

    /// A low-level read's value: counted, and decoded as `T`.
    pub(crate) fn value_of<T: DeserializeOwned>(
        &self,
        lookup: Lookup,
        timer: metrics::Timer,
    ) -> Result<T, CacheMiss> {
        let payload = self.counted_payload(lookup, "get", timer.elapsed())?;
        self.decode(&payload).ok_or(CacheMiss::UNDECODABLE)
    }

    /// A low-level read's stored value, undecoded: counted as a hit or a miss.
    pub(crate) fn payload_of(
        &self,
        lookup: Lookup,
        timer: metrics::Timer,
    ) -> Result<Payload, CacheMiss> {
        self.counted_payload(lookup, "get", timer.elapsed())
    }

    /// A batch read's values: each counted (as one `get`), and decoded as `T`.
    pub(crate) fn values_of<T: DeserializeOwned>(
        &self,
        lookups: Vec<Lookup>,
        timer: metrics::Timer,
    ) -> Vec<Result<T, CacheMiss>> {
        let elapsed = timer.elapsed();
        lookups
            .into_iter()
            .map(|lookup| {
                let payload = self.counted_payload(lookup, "get_many", elapsed)?;
                self.decode(&payload).ok_or(CacheMiss::UNDECODABLE)
            })
            .collect()
    }

    /// A read's value bytes, or why there are none, counted as one hit or one miss.
    fn counted_payload(
        &self,
        lookup: Lookup,
        function: &'static str,
        elapsed: Duration,
    ) -> Result<Payload, CacheMiss> {
        let counters = &self.inner.counters;
        let payload = match lookup {
            Lookup::Hit(payload, _) => Ok(payload),
            // Past its lifetime: only a decorated call with a stale option may serve it.
            Lookup::Stale(..) | Lookup::Miss(_) => Err(CacheMiss::ABSENT),
            // A disabled cache answers nothing by design: nothing is there, nothing failed.
            Lookup::Unavailable if self.inner.backend.is_disabled() => Err(CacheMiss::ABSENT),
            Lookup::Unavailable => Err(CacheMiss::UNAVAILABLE),
        };
        if payload.is_ok() {
            counters.hits.bump();
        } else {
            counters.misses.bump();
        }
        let namespace = &self.inner.settings.namespace;
        metrics::call(namespace, function, payload.is_ok(), elapsed);
        payload
    }

    /// Counts a write that landed.
    pub(crate) fn count_write(&self, written: bool) -> bool {
        if written {
            self.inner.counters.sets.bump();
        }
        written
    }

    /// Which entries of a batch landed: those that were encoded, when the batch was stored.
    pub(crate) fn count_writes(&self, encoded: Vec<bool>, stored: bool) -> Vec<bool> {
        encoded
            .into_iter()
            .map(|encoded| self.count_write(encoded && stored))
            .collect()
    }

    /// Whether a delete removed a live entry.
    pub(crate) fn count_delete(&self, reply: Result<Reply, BackendError>) -> bool {
        reply.and_then(Reply::into_done).unwrap_or(false)
    }

    /// Counts an invalidation the backend took.
    pub(crate) fn count_invalidation(&self, reply: Result<Reply, BackendError>) -> bool {
        let taken = matches!(reply, Ok(Reply::Ok));
        if taken {
            self.inner.counters.invalidations.bump();
        }
        taken
    }

    /// Logs (rate-limited) a value that could not be encoded or decoded.
    pub(crate) fn codec_trouble(&self, message: fmt::Arguments<'_>) {
        self.inner.counters.errors.bump();
        metrics::error(&self.inner.settings.namespace, "codec", "codec");
        if let Some(held_back) = self.inner.codec_warnings.permit() {
            tracing::warn!(namespace = %self.inner.settings.namespace, held_back, "rtc: {message}");
        }
    }

    /// False, with a rate-limited warning, for a zero lifetime: such an entry would expire as
    /// it is written, so the write is skipped.
    pub(crate) fn lifetime_usable(&self, lifetime: Lifetime) -> bool {
        if !lifetime.is_zero() {
            return true;
        }
        if let Some(held_back) = self.inner.codec_warnings.permit() {
            tracing::warn!(
                namespace = %self.inner.settings.namespace,
                held_back,
                "rtc: a write with a lifetime of zero was skipped (use Lifetime::Never for no expiry)"
            );
        }
        false
    }

    /// Reports a backend failure (rate-limited).
    fn failed(&self, operation: &'static str, error: &BackendError) {
        if error.is_quiet() {
            return;
        }
        self.inner.counters.errors.bump();
        metrics::error(&self.inner.settings.namespace, operation, error.kind());
        let Some(held_back) = self.inner.backend_warnings.permit() else {
            return;
        };
        if let BackendError::Internal(_) = error {
            // rtc's own fault, not Redis's: said as loudly as logging can.
            tracing::error!(
                namespace = %self.inner.settings.namespace,
                operation,
                held_back,
                "rtc: {error}; the call goes on without the cache"
            );
        } else {
            tracing::warn!(
                namespace = %self.inner.settings.namespace,
                operation,
                held_back,
                "rtc: {error}; the call goes on without the cache"
            );
        }
    }
}
