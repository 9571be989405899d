//! Where entries live: Redis, this process's memory, or nowhere (disabled).
//!
//! A backend answers [`Operation`]s; the logic that decides which ones to send lives in
//! [`crate::engine`] and is the same for all of them. [`Backend::execute`] and, for Redis,
//! `RedisStore::execute_async` (which `TaggedCache::round_trip_async` awaits in place) are the
//! only doors to the backends' I/O.

pub(crate) mod memory;
pub(crate) mod redis;

use crate::engine::{Operation, Reply};
use crate::error::{BackendError, ConfigError};
use crate::settings::{Settings, Storage};

use self::memory::MemoryStore;
use self::redis::RedisStore;

/// Why a `PING` got no answer.
#[derive(Debug)]
pub(crate) enum PingFailure {
    /// An async ping made outside a tokio runtime (or on one without drivers, when rtc's own
    /// runtime could not be started).
    NoRuntime,
    /// What redis-rs reported: no connection, no answer in time, an error reply...
    Redis(::redis::RedisError),
}

pub(crate) enum Backend {
    Disabled,
    Memory(Box<MemoryStore>),
    Redis(Box<RedisStore>),
}

impl Backend {
    /// The backend the settings name. Nothing connects yet.
    pub(crate) fn open(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(match &settings.storage {
            Storage::Disabled => Backend::Disabled,
            Storage::Memory => Backend::Memory(Box::new(MemoryStore::new(settings.max_entries))),
            Storage::Redis(_)
            | Storage::Sentinel(_)
            | Storage::Cluster(_)
            | Storage::ClusterClient(_) => Backend::Redis(Box::new(RedisStore::open(settings)?)),
        })
    }

    /// Answers one operation, blocking on Redis's reply.
    pub(crate) fn execute(&self, operation: Operation<'_>) -> Result<Reply, BackendError> {
        match self {
            Backend::Disabled => Err(BackendError::Disabled),
            Backend::Memory(store) => store.execute(operation),
            Backend::Redis(store) => store.execute(operation),
        }
    }

    /// True for a cache that stores nothing (`disabled(true)`): its misses are not outages.
    pub(crate) fn is_disabled(&self) -> bool {
        matches!(self, Backend::Disabled)
    }

    /// Sends Redis a `PING` and waits for the answer; the other backends have nothing to
    /// reach and answer at once.
    pub(crate) fn ping(&self) -> Result<(), PingFailure> {
        match self {
            Backend::Redis(store) => store.ping().map_err(PingFailure::Redis),
            Backend::Disabled | Backend::Memory(_) => Ok(()),
        }
    }

    /// Async twin of [`Backend::ping`].
    pub(crate) async fn ping_async(&self) -> Result<(), PingFailure> {
        match self {
            Backend::Redis(store) => store.ping_async().await,
            Backend::Disabled | Backend::Memory(_) => Ok(()),
        }
    }

    /// True when one `WriteStamped` can create tags and stamp an entry atomically (not on a
    /// cluster, whose tags live in other slots than the entry).
    pub(crate) fn stamps_atomically(&self) -> bool {
        match self {
            Backend::Redis(store) => !store.is_cluster(),
            Backend::Disabled | Backend::Memory(_) => true,
        }
    }

    /// The Redis store, if this is one.
    pub(crate) fn redis(&self) -> Option<&RedisStore> {
        match self {
            Backend::Redis(store) => Some(store),
            Backend::Disabled | Backend::Memory(_) => None,
        }
    }

    /// True when entries are shared with other processes (and so need a cross-process lock).
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Backend::Redis(_))
    }

    /// Reads Redis got in a pipeline with other calls' reads (none for the other backends).
    pub(crate) fn pipelined_reads(&self) -> u64 {
        match self {
            Backend::Redis(store) => store.pipelined_reads(),
            Backend::Disabled | Backend::Memory(_) => 0,
        }
    }

    /// The in-memory store, if this is one.
    pub(crate) fn memory(&self) -> Option<&MemoryStore> {
        match self {
            Backend::Memory(store) => Some(store),
            _ => None,
        }
    }
}
