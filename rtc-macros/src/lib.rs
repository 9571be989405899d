//! The `#[cached]` attribute of rtc. Use it as `rtc::cached`.
