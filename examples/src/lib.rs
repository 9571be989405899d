//! Runnable examples of rtc. (The quickstart, `cargo run --example quickstart`, lives in the
//! facade package, `rtc/examples/`, so that it builds nothing but rtc.)
//!
//! - `cargo run -p rtc-examples --bin bookshop`: [`bookshop`], a web service (axum) in front of
//!   SQLite whose reads are cached with `#[cached]` and tags, and whose writes invalidate the
//!   tags they touch.

pub mod bookshop;
