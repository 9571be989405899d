//! What can go wrong, each with the exit code it ends the command with.

use std::process::ExitCode;

use rtc::{PingError, PingErrorKind};

use crate::exit;

/// A failed command. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An input that cannot be used as given: a bad URL or setting (exit 2).
    #[error("{0}")]
    Usage(String),
    /// No connection could be opened (exit 3).
    #[error("cannot reach Redis at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The server refused the credentials (exit 3).
    #[error("Redis at {server} refused the credentials: {reason}")]
    Refused { server: String, reason: String },
    /// A command failed on a reachable server (exit 3).
    #[error("Redis at {server} failed: {reason}")]
    Server { server: String, reason: String },
    /// The namespace holds no key on the server (exit 4): most often a mistyped --namespace.
    #[error("namespace '{namespace}' holds no keys on this server (is --namespace, or $RTC_NAMESPACE, right?)")]
    EmptyNamespace { namespace: String },
    /// The server is reachable but cannot serve rtc, or refused what was asked (exit 3).
    #[error("{0}")]
    Refusal(String),
}

impl CliError {
    /// [`exit::USAGE`], [`exit::EMPTY_NAMESPACE`], or [`exit::REDIS`] for everything Redis
    /// caused.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Usage(_) => exit::USAGE,
            Self::EmptyNamespace { .. } => exit::EMPTY_NAMESPACE,
            Self::Unreachable { .. }
            | Self::Refused { .. }
            | Self::Server { .. }
            | Self::Refusal(_) => exit::REDIS,
        })
    }

    /// Sorts a failed [`TaggedCache::ping`](rtc::TaggedCache::ping) of the servers at `server`.
    pub fn from_ping(server: &str, error: &PingError) -> Self {
        let server = server.to_owned();
        let reason =
            std::error::Error::source(error).map_or_else(|| error.to_string(), ToString::to_string);
        match error.kind() {
            PingErrorKind::Unreachable | PingErrorKind::TimedOut => {
                Self::Unreachable { server, reason }
            }
            PingErrorKind::Refused => Self::Refused { server, reason },
            _ => Self::Server { server, reason },
        }
    }

    /// Sorts a redis-rs error met while talking to `server`.
    pub fn from_redis(server: &str, error: &redis::RedisError) -> Self {
        let server = server.to_owned();
        let reason = error.to_string();
        if error.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"))
        {
            Self::Refused { server, reason }
        } else if error.kind() == redis::ErrorKind::InvalidClientConfig {
            Self::Usage(format!("bad connection settings for {server}: {reason}"))
        } else if error.is_io_error() || error.is_timeout() || error.is_connection_refusal() {
            Self::Unreachable { server, reason }
        } else {
            Self::Server { server, reason }
        }
    }
}
