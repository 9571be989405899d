//! A call's report: its timing and findings, for the hook, the metrics and debug logging.

use std::time::Instant;

use super::call::{Call, CallEntry};
use super::json_args::JsonArgs;
use super::protocol::Mode;
use super::site::reported;
use crate::cache::TaggedCache;
use crate::hook::CacheInfo;
use crate::metrics;

/// The timing and findings of a call, for the hook.
pub(crate) struct Report {
    pub(super) started: Instant,
    pub(super) info: CacheInfo,
    /// False for `refresh_<fn>`, which is neither a hit nor a miss.
    pub(super) counted: bool,
}

impl Report {
    /// A wait that began at `since` ended at `now`.
    pub(super) fn waited(&mut self, since: Instant, now: Instant) {
        let waited = now.saturating_duration_since(since);
        self.info.lock_waited = self.info.lock_waited.saturating_add(waited);
    }

    /// A value was found: `section` is its value section.
    pub(super) fn hit(&mut self, section: &[u8]) {
        self.info.hit = true;
        self.stored(section);
    }

    /// The value's size as stored, compressed if it was; the codec id is not counted.
    pub(super) fn stored(&mut self, section: &[u8]) {
        self.info.serialized_size = section.len().saturating_sub(1);
    }
}

impl<'a> Call<'a> {
    /// Ends a call answered by the near cache.
    pub(super) fn finish_near<R>(&self, cache: &TaggedCache, mode: Mode, outcome: R) -> R {
        if !reported(cache) {
            return outcome;
        }
        let mut report = self.report(mode, Instant::now());
        report.info.hit = true;
        self.finish_with(cache, &mut report, outcome)
    }

    pub(super) fn report(&self, mode: Mode, started: Instant) -> Report {
        Report {
            counted: !matches!(mode, Mode::Refresh),
            started,
            info: CacheInfo {
                file: self.site.file,
                impl_type: self.site.impl_type,
                function_name: self.site.function_name,
                is_method: self.site.is_method,
                ..CacheInfo::default()
            },
        }
    }

    pub(super) fn finish<R>(&self, entry: &CallEntry<'_>, report: &mut Report, outcome: R) -> R {
        self.finish_with(entry.cache, report, outcome)
    }

    fn finish_with<R>(&self, cache: &TaggedCache, report: &mut Report, outcome: R) -> R {
        if reported(cache) {
            report.info.elapsed = report.started.elapsed();
        }
        if report.counted {
            let namespace = cache.namespace();
            metrics::call(
                namespace,
                self.site.function_name,
                report.info.hit,
                report.info.elapsed,
            );
        }
        tracing::debug!(
            function = self.site.function_name,
            hit = report.info.hit,
            elapsed_us = report.info.elapsed.as_micros() as u64,
            "rtc: cached call"
        );
        if let Some(hook) = cache.hook() {
            report.info.function_args = self
                .args
                .as_ref()
                .and_then(JsonArgs::as_str)
                .unwrap_or_default()
                .to_owned();
            let key = self.key().unwrap_or_default();
            hook.call(&key, &self.tags, &report.info, self.hook_userdata);
        }
        outcome
    }
}
