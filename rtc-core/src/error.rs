//! The two error types users see.

use std::fmt;

/// The value is not in the cache: never written, expired, invalidated, unreadable as the requested
/// type, or the backend could not be reached (rtc fails open, so an outage looks like a miss).
///
/// ```
/// use rtc::{CacheMiss, TaggedCache, NO_TAGS};
///
/// let cache = TaggedCache::builder().in_local_memory(true).build().unwrap();
/// assert_eq!(cache.get::<String>("never written", NO_TAGS), Err(CacheMiss));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CacheMiss;

impl fmt::Display for CacheMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cache miss")
    }
}

impl std::error::Error for CacheMiss {}

/// A [`TaggedCacheBuilder`](crate::TaggedCacheBuilder) setting that cannot work. Returned by
/// `build()`, which never connects: a configuration error is the only error `build()` gives.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL could not be parsed, or its scheme is not `redis://`, `rediss://` or `redis+unix://`.
    #[error("invalid Redis URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it (the URL itself is not repeated: it may hold a password).
        reason: String,
    },
    /// TLS was asked for, but rtc was built without its `tls` feature.
    #[error(
        "TLS was requested (rediss:// or ssl(true)) but rtc was built without its `tls` feature"
    )]
    TlsUnavailable,
    /// A TLS certificate or key file could not be read.
    #[error("cannot read TLS file {path}: {reason}")]
    TlsFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// Two settings contradict each other.
    #[error("contradictory settings: {0}")]
    Contradictory(&'static str),
    /// A setting is out of its range.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}
