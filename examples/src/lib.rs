//! Runnable examples of rtc live in `examples/`: `cargo run --example quickstart`.
