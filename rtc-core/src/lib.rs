//! The engine of [rtc](https://docs.rs/rtc): key layout, entry format, backends, fail-open
//! plumbing. Applications depend on the `rtc` crate, which re-exports everything public here.
//!
//! Layers, from the bottom: `format` (keys, versions, the entry format: no I/O), `codec` (values
//! as bytes: serde format, compression, the codec id), `engine`
//! (each operation's logic as a state machine that asks for round trips but never makes one),
//! `backend` (the in-memory store, and Redis: commands, connections, back-off, TLS), `cache`
//! (the public [`TaggedCache`] API and fail-open reporting) and `decorate` (what `#[cached]`
//! calls, including the stampede-lock protocol).

#![warn(missing_docs)]
// Every `unsafe` block says why it is sound (CI denies warnings).
#![warn(clippy::undocumented_unsafe_blocks)]

mod assertions;
mod backend;
mod cache;
mod clock;
mod codec;
mod config;
mod decorate;
mod engine;
mod error;
mod format;
mod global;
mod hook;
mod lifetime;
mod metrics;
#[cfg(feature = "simulation")]
mod mutants;
mod near;
mod settings;
#[cfg(feature = "simulation")]
mod simulation;
mod stats;
mod tags;
mod warnings;

/// What the `#[cached]` macro's output calls. **Not public API**: it changes in any release,
/// without notice. Generated code reaches it as `rtc::__private`.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::Codec;
    pub use crate::decorate::*;
}

/// The deterministic simulator of the call protocol against a model of Redis (the
/// `simulation` feature; `rtc-core/tests/simulation.rs` runs it). **Not public API.**
#[cfg(feature = "simulation")]
#[doc(hidden)]
pub mod __simulation {
    pub use crate::simulation::{run, Config, Coverage, Mutant, Run, Violation};
}

/// The redis-rs rtc is built with, for [`TaggedCacheBuilder::client`] and
/// [`TaggedCacheBuilder::cluster_client`]: a client made with it is of the version rtc takes.
pub use redis;

pub use cache::{PingError, PingErrorKind, TaggedCache, NO_TAGS};
pub use codec::Codec;
pub use config::TaggedCacheBuilder;
pub use decorate::EntryRef;
pub use error::{CacheMiss, ConfigError, MissKind};
pub use format::MAX_TAGS;
pub use global::{global, set_global};
pub use hook::{CacheInfo, HookFn};
pub use lifetime::Lifetime;
pub use stats::CacheStats;
pub use tags::IntoTags;
