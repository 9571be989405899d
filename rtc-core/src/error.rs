//! The errors: the two users see, and why an operation did not reach the data (internal).

use std::fmt;
use std::time::Duration;

/// Why a read found no value: the entry is not there, the cache could not be asked, or what it
/// holds does not decode as the type asked for. Returned by [`CacheMiss::kind`].
///
/// New kinds may be added (as to `std::io::ErrorKind`): match with a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MissKind {
    /// No fresh entry: never written, expired, deleted, or one of its tags was invalidated.
    Absent,
    /// The backend could not answer (unreachable, timed out, refused): rtc fails open, so an
    /// outage is a miss of this kind, with a warning in the log.
    Unavailable,
    /// An entry is there but does not decode as the type asked for (another type, another
    /// codec, or corrupt bytes).
    Undecodable,
}

impl MissKind {
    fn describe(self) -> &'static str {
        match self {
            MissKind::Absent => "cache miss: no fresh entry",
            MissKind::Unavailable => "cache miss: the cache's backend could not be reached",
            MissKind::Undecodable => "cache miss: the entry does not decode as the type asked for",
        }
    }
}

impl fmt::Display for MissKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A read found no value; [`kind`](CacheMiss::kind) says why. rtc fails open, so an outage or an
/// entry that does not decode is a miss too, never a panic or an error of another type.
///
/// ```
/// use rtc::{MissKind, TaggedCache, NO_TAGS};
///
/// let cache = TaggedCache::builder().in_memory().build().unwrap();
/// let miss = cache.get::<String>("never written", NO_TAGS).unwrap_err();
/// assert_eq!(miss.kind(), MissKind::Absent);
/// assert_eq!(miss.to_string(), "cache miss: no fresh entry");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheMiss {
    kind: MissKind,
}

impl CacheMiss {
    /// A miss of this kind (for tests and for wrappers that report misses the same way).
    pub const fn new(kind: MissKind) -> Self {
        CacheMiss { kind }
    }

    /// Why the read missed.
    pub const fn kind(&self) -> MissKind {
        self.kind
    }

    pub(crate) const ABSENT: CacheMiss = CacheMiss::new(MissKind::Absent);
    pub(crate) const UNAVAILABLE: CacheMiss = CacheMiss::new(MissKind::Unavailable);
    pub(crate) const UNDECODABLE: CacheMiss = CacheMiss::new(MissKind::Undecodable);
}

impl From<MissKind> for CacheMiss {
    fn from(kind: MissKind) -> Self {
        CacheMiss::new(kind)
    }
}

impl fmt::Display for CacheMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
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
        /// The error redis-rs gave for it, if it was redis-rs that refused it.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
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

/// Why an operation did not reach the data. Every one of them ends as a miss or a skipped write.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    #[error("the cache is disabled")]
    Disabled,
    #[error("Redis is being skipped after a connection failure")]
    Skipped,
    #[error("Redis could not be reached ({error}); skipping it for {pause:?}")]
    Unreachable {
        error: redis::RedisError,
        pause: Duration,
    },
    #[error("Redis refused the command: {0}")]
    Redis(redis::RedisError),
    #[error("Redis sent a reply of an unexpected shape")]
    UnexpectedReply,
    #[error("an entry may carry at most {} tags", crate::format::MAX_TAGS)]
    TooManyTags,
    #[error("async call made outside a tokio runtime (the Redis backend's async API needs tokio)")]
    NoRuntime,
    #[error(
        "this tokio runtime has no I/O or no time driver, and rtc's own runtime could not be \
         started to drive Redis for it"
    )]
    NoDrivers,
    #[error("this backend shares nothing with other processes, so it has no stampede lock")]
    NotShared,
    /// Not a reply problem: rtc itself went wrong. Reported as a bug, and failed open like
    /// every other error.
    #[error("bug in rtc, please report it: {0}")]
    Internal(&'static str),
}

impl BackendError {
    /// A short name for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            BackendError::Disabled => "disabled",
            BackendError::Skipped => "skipped",
            BackendError::Unreachable { .. } => "unreachable",
            BackendError::Redis(_) => "refused",
            BackendError::UnexpectedReply => "unexpected_reply",
            BackendError::TooManyTags => "too_many_tags",
            BackendError::NoRuntime => "no_runtime",
            BackendError::NoDrivers => "no_drivers",
            BackendError::NotShared => "not_shared",
            BackendError::Internal(_) => "internal",
        }
    }

    /// True for errors that were already reported when they first happened.
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(self, BackendError::Disabled | BackendError::Skipped)
    }
}
