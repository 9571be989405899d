//! [`TaggedCache::ping`]: is the storage there, and how far away is it?

use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

use redis::RedisError;

use super::TaggedCache;
use crate::backend::redis::is_connection_trouble;
use crate::backend::PingFailure;

impl TaggedCache {
    /// Sends Redis a `PING` and returns how long the answer took: on a cluster, until every
    /// primary has answered; behind Sentinel, the primary the sentinels name. The in-memory
    /// and disabled caches have nothing to reach and return `Ok(Duration::ZERO)` at once.
    ///
    /// Unlike every other call, a ping fails instead of failing open: it is how an application
    /// (a readiness probe, a start-up check, `rtc check`) learns that Redis is not there. It
    /// always tries, even while the cache is skipping Redis after a connection failure, and it
    /// counts nowhere (no [`stats`](TaggedCache::stats), no warning, no back-off change).
    ///
    /// The first ping of a cache (or the first after a failure) also opens the connection, so
    /// it takes longer than the round trip alone.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache = rtc::TaggedCache::builder().in_memory().build().unwrap();
    /// assert_eq!(cache.ping().ok(), Some(Duration::ZERO));
    /// ```
    ///
    /// ```no_run
    /// let cache = rtc::TaggedCache::builder().url("redis://127.0.0.1:6379/0").build()?;
    /// match cache.ping() {
    ///     Ok(round_trip) => println!("Redis answered in {round_trip:?}"),
    ///     Err(error) => eprintln!("{error} ({:?})", std::error::Error::source(&error)),
    /// }
    /// # Ok::<(), rtc::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A [`PingError`] whose [`kind`](PingError::kind) says why no answer came: nothing could be
    /// reached, no answer in time, the credentials were refused, or Redis answered with an error.
    pub fn ping(&self) -> Result<Duration, PingError> {
        if !self.inner.backend.is_shared() {
            return Ok(Duration::ZERO);
        }
        let started = Instant::now();
        self.inner.backend.ping().map_err(PingError::from)?;
        Ok(started.elapsed())
    }

    /// Async twin of [`TaggedCache::ping`].
    ///
    /// # Errors
    /// As [`TaggedCache::ping`]; also [`PingErrorKind::NoRuntime`] when called outside a tokio
    /// runtime (the Redis connection needs one).
    pub async fn ping_async(&self) -> Result<Duration, PingError> {
        if !self.inner.backend.is_shared() {
            return Ok(Duration::ZERO);
        }
        let started = Instant::now();
        self.inner
            .backend
            .ping_async()
            .await
            .map_err(PingError::from)?;
        Ok(started.elapsed())
    }
}

/// Why [`TaggedCache::ping`] got no answer from Redis. [`kind`](PingError::kind) sorts the
/// causes; [`source`](Error::source) is redis-rs's own error, when there is one.
///
/// ```
/// fn assert_sendable<E: std::error::Error + Send + Sync + 'static>() {}
/// assert_sendable::<rtc::PingError>();
/// ```
#[derive(Debug)]
pub struct PingError {
    kind: PingErrorKind,
    source: Option<RedisError>,
}

/// The cause of a [`PingError`]. More may be added: match with a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PingErrorKind {
    /// No connection could be opened or kept: nothing listens on the port, the host is
    /// unknown, the connection dropped, no sentinel named a reachable primary, or a cluster
    /// has a shard down.
    Unreachable,
    /// Redis did not answer within the cache's timeouts (connecting, then each reply).
    TimedOut,
    /// Redis refused the credentials: a wrong password or an unknown user.
    Refused,
    /// Redis answered, with an error: an ACL user who may not run `PING`, a server still
    /// loading its data, a replica that lost its primary...
    ErrorReply,
    /// [`TaggedCache::ping_async`] was called outside a tokio runtime. (On a runtime built
    /// without its I/O or time driver, rtc drives the ping on a runtime of its own; this kind
    /// also says that runtime could not be started.)
    NoRuntime,
}

impl PingError {
    /// Why no answer came.
    ///
    /// ```no_run
    /// use rtc::PingErrorKind;
    ///
    /// let cache = rtc::TaggedCache::builder().url("redis://127.0.0.1:6379/0").build()?;
    /// if let Err(error) = cache.ping() {
    ///     match error.kind() {
    ///         PingErrorKind::Unreachable | PingErrorKind::TimedOut => eprintln!("Redis is down"),
    ///         PingErrorKind::Refused => eprintln!("check the password"),
    ///         _ => eprintln!("{error}"),
    ///     }
    /// }
    /// # Ok::<(), rtc::ConfigError>(())
    /// ```
    pub fn kind(&self) -> PingErrorKind {
        self.kind
    }
}

impl From<PingFailure> for PingError {
    fn from(failure: PingFailure) -> Self {
        match failure {
            PingFailure::NoRuntime => PingError {
                kind: PingErrorKind::NoRuntime,
                source: None,
            },
            PingFailure::Redis(error) => PingError {
                kind: kind_of(&error),
                source: Some(error),
            },
        }
    }
}

/// Sorts what redis-rs reported; a timeout is also connection trouble, so it is asked first.
fn kind_of(error: &RedisError) -> PingErrorKind {
    if error.is_timeout() {
        PingErrorKind::TimedOut
    } else if error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        PingErrorKind::Refused
    } else if is_connection_trouble(error) {
        PingErrorKind::Unreachable
    } else {
        PingErrorKind::ErrorReply
    }
}

impl fmt::Display for PingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            PingErrorKind::Unreachable => "Redis could not be reached",
            PingErrorKind::TimedOut => "Redis did not answer PING in time",
            PingErrorKind::Refused => "Redis refused the credentials",
            PingErrorKind::ErrorReply => "Redis answered PING with an error",
            PingErrorKind::NoRuntime => {
                "ping_async was called outside a tokio runtime (the Redis connection needs one)"
            }
        })
    }
}

impl Error for PingError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_ref()
            .map(|error| error as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_error(kind: redis::ErrorKind, detail: &str) -> RedisError {
        RedisError::from((kind, "test", detail.to_owned()))
    }

    #[test]
    fn each_cause_is_sorted_into_its_kind() {
        let refused_port =
            RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let bad_password = redis_error(redis::ErrorKind::AuthenticationFailed, "bad password");
        let kinds = [refused_port, timed_out, bad_password]
            .into_iter()
            .map(|error| PingError::from(PingFailure::Redis(error)).kind())
            .collect::<Vec<_>>();
        assert_eq!(
            kinds,
            [
                PingErrorKind::Unreachable,
                PingErrorKind::TimedOut,
                PingErrorKind::Refused
            ]
        );
        assert_eq!(
            PingError::from(PingFailure::NoRuntime).kind(),
            PingErrorKind::NoRuntime
        );
    }

    #[test]
    fn the_redis_error_is_the_source_and_stays_out_of_the_message() {
        let error = PingError::from(PingFailure::Redis(RedisError::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))));
        let source = error.source().expect("redis-rs's error").to_string();
        assert!(!error.to_string().contains(&source), "{error}");
        assert!(PingError::from(PingFailure::NoRuntime).source().is_none());
    }
}
