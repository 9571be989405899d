//! The engine of [rtc](https://docs.rs/rtc): key layout, entry format, backends, fail-open
//! plumbing. Applications depend on the `rtc` crate, which re-exports everything public here.

#![warn(missing_docs)]

mod backend;
mod cache;
mod config;
mod entry;
mod error;
mod health;
mod keys;
mod request;
mod stats;
mod version;

pub use cache::{TaggedCache, NO_TAGS};
pub use config::TaggedCacheBuilder;
pub use entry::MAX_TAGS;
pub use error::{CacheMiss, ConfigError};
pub use stats::CacheStats;
