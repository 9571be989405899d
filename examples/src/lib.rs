//! Runnable examples of rtc.
//!
//! - `cargo run --example quickstart`: a miss, a hit and invalidations, timed.
//! - `cargo run -p rtc-examples --bin bookshop`: [`bookshop`], a web service (axum) in front of
//!   SQLite whose reads are cached with `#[cached]` and tags, and whose writes invalidate the
//!   tags they touch.

pub mod bookshop;
