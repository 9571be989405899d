//! `lifetime = ...`, `lock_timeout = ...` and `jitter = ...` as a user writes them: whole
//! seconds or a `Duration`.

use std::time::Duration;

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
