//! The stale options, as a function's `#[cached(...)]` or a cache's builder gives them. How a
//! call works with them is `decorate::stale`.

use std::time::Duration;

/// `stale_if_error`, `stale_while_revalidate` and `stale_if_slow`, as a function's
/// `#[cached(...)]` or a cache's builder gives them; `None`: not given (a function then takes
/// its cache's). A function's `= false` is `Some(Duration::ZERO)`: a window that serves
/// nothing, which turns its cache's default off for that function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StaleOptions {
    /// A function that fails returns the entry past its lifetime by at most this long instead.
    pub if_error: Option<Duration>,
    /// An entry past its lifetime by at most this long is returned at once and refreshed in
    /// the background.
    pub while_revalidate: Option<Duration>,
    /// A computation that takes longer lets the call return the stale value (within
    /// `if_error`) and finishes in the background.
    pub timeout: Option<Duration>,
    /// True when the function names `stale_while_revalidate` or `stale_if_slow` (its body may run in
    /// the background): only such a function takes its cache's defaults for those two, and its
    /// `refresh_<fn>` writes entries with the same window as its calls.
    pub background: bool,
}

impl StaleOptions {
    /// True when a window is given as zero: a cache's builder refuses it (off is unset).
    pub(crate) fn has_zero_window(&self) -> bool {
        [self.if_error, self.while_revalidate, self.timeout]
            .iter()
            .any(|window| window.is_some_and(|window| window.is_zero()))
    }

    /// These options; each one not given is `defaults`'.
    pub(crate) fn or(self, defaults: StaleOptions) -> StaleOptions {
        StaleOptions {
            if_error: self.if_error.or(defaults.if_error),
            while_revalidate: self.while_revalidate.or(defaults.while_revalidate),
            timeout: self.timeout.or(defaults.timeout),
            background: self.background,
        }
    }
}
