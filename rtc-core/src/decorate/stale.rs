//! The stale options of a decorated call: `stale_if_error`, `stale_while_revalidate` and
//! `stale_if_slow`, as the function and its cache give them, and the windows a call works with.
//!
//! Stale means only "past its lifetime": an entry whose tags were invalidated, or that was
//! deleted, is a miss to every option (see `engine::Lookup::Stale`).

use std::time::Duration;

pub use crate::settings::StaleOptions;

/// The stale windows of one call, resolved against its cache's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Windows {
    pub if_error: Duration,
    pub while_revalidate: Duration,
    /// Only for a call whose computation may outlive it.
    pub timeout: Option<Duration>,
}

impl Windows {
    /// The function's options, each one not given taken from its cache's. `detached`: the call
    /// may run its computation in the background, which `stale_while_revalidate` and `timeout`
    /// need; without it they are off.
    pub(crate) fn resolve(function: StaleOptions, cache: StaleOptions, detached: bool) -> Self {
        let options = function.or(cache);
        let window = |option: Option<Duration>| option.unwrap_or_default();
        Windows {
            if_error: window(options.if_error),
            while_revalidate: if detached {
                window(options.while_revalidate)
            } else {
                Duration::ZERO
            },
            timeout: options
                .timeout
                .filter(|timeout| detached && !timeout.is_zero()),
        }
    }

    /// How long an entry this call writes stays after its lifetime (recorded in it): the
    /// longest window that may serve it.
    pub(crate) fn stored(&self) -> Duration {
        self.if_error.max(self.while_revalidate)
    }

    /// True when the call can serve a stale entry: its reads ask for the entry's time to live.
    pub(crate) fn any(&self) -> bool {
        !self.stored().is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_takes_its_caches_defaults_and_background_options_only_when_detached() {
        let secs = |s| Some(Duration::from_secs(s));
        let cache = StaleOptions {
            if_error: secs(60),
            while_revalidate: secs(30),
            timeout: secs(1),
            background: false,
        };
        let function = StaleOptions {
            if_error: secs(5),
            ..StaleOptions::default()
        };
        let inline = Windows::resolve(function, cache, false);
        assert_eq!(
            (inline.if_error, inline.while_revalidate, inline.timeout),
            (Duration::from_secs(5), Duration::ZERO, None)
        );
        let detached = Windows::resolve(function, cache, true);
        assert_eq!(detached.while_revalidate, Duration::from_secs(30));
        assert_eq!(detached.timeout, secs(1));
        assert_eq!(detached.stored(), Duration::from_secs(30));
        assert!(!Windows::default().any());
    }
}
