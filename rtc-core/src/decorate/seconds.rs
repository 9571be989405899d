//! `lifetime = ...`, `lock_timeout = ...`, `jitter = ...` and the stale windows as a user
//! writes them: whole seconds or a `Duration` (and, for `lifetime`, an `rtc::Lifetime`).

use std::time::Duration;

use crate::lifetime::Lifetime;

/// A length of time given to `#[cached]`: a number of seconds (`u64`) or a `Duration`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a length of time for `#[cached]`",
    label = "expected whole seconds (`u64`) or a `std::time::Duration`",
    note = "write `60`, a `u64` constant, or `Duration::from_millis(500)` for less than a second"
)]
pub trait Seconds {
    /// The length of time.
    fn duration(self) -> Duration;
}

impl Seconds for u64 {
    fn duration(self) -> Duration {
        Duration::from_secs(self)
    }
}

impl Seconds for Duration {
    fn duration(self) -> Duration {
        self
    }
}

/// The `Duration` of an option's value.
pub fn duration(value: impl Seconds) -> Duration {
    value.duration()
}

/// What `lifetime = ...` takes: whole seconds, a `Duration` or an `rtc::Lifetime`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lifetime for `#[cached]`",
    label = "expected whole seconds (`u64`), a `std::time::Duration` or an `rtc::Lifetime`",
    note = "write `60`, `Duration::from_millis(500)`, or `rtc::Lifetime::Never` for entries that never expire"
)]
pub trait IntoLifetime {
    /// The lifetime.
    fn lifetime(self) -> Lifetime;
}

impl IntoLifetime for u64 {
    fn lifetime(self) -> Lifetime {
        Lifetime::After(Duration::from_secs(self))
    }
}

impl IntoLifetime for Duration {
    fn lifetime(self) -> Lifetime {
        Lifetime::After(self)
    }
}

impl IntoLifetime for Lifetime {
    fn lifetime(self) -> Lifetime {
        self
    }
}

/// The `Lifetime` of a `lifetime = ...` value.
pub fn lifetime(value: impl IntoLifetime) -> Lifetime {
    value.lifetime()
}
