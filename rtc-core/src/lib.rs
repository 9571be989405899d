//! The engine of [rtc](https://docs.rs/rtc): key layout, entry format, backends, fail-open
//! plumbing. Applications depend on the `rtc` crate, which re-exports everything public here.

#![warn(missing_docs)]

mod backend;
mod cache;
mod config;
#[doc(hidden)]
pub mod decorate;
mod entry;
mod error;
mod flights;
mod global;
mod health;
mod hook;
mod keys;
mod request;
mod stats;
mod tls;
mod version;

pub use cache::{TaggedCache, NO_TAGS};
pub use config::TaggedCacheBuilder;
pub use entry::MAX_TAGS;
pub use error::{CacheMiss, ConfigError};
pub use global::{global, set_global};
pub use hook::{CacheInfo, HookFn};
pub use stats::CacheStats;
