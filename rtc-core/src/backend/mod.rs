//! Where entries live: Redis, this process's memory, or nowhere (disabled).
//!
//! A backend offers a handful of primitive operations on entry and tag keys; the freshness logic
//! above it ([`crate::cache`]) is the same for all of them.

mod commands;
mod memory;
mod redis;

use std::time::Duration;

use crate::entry::Observed;
use crate::keys::{LockKeys, TagKey};
use crate::version::Version;

pub(crate) use self::commands::LockAttempt;
use self::commands::Topology;
pub(crate) use self::memory::MemoryStore;
pub(crate) use self::redis::{RedisStore, Timeouts};

/// Why an operation did not reach the data. Every one of them ends as a miss or a skipped write.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    #[error("the cache is disabled")]
    Disabled,
    #[error("Redis is being skipped after a connection failure")]
    Skipped,
    #[error("Redis could not be reached ({error}); skipping it for {pause:?}")]
    Unreachable {
        error: ::redis::RedisError,
        pause: Duration,
    },
    #[error("Redis refused the command: {0}")]
    Redis(::redis::RedisError),
    #[error("Redis sent a reply of an unexpected shape")]
    UnexpectedReply,
    #[error("a tag key holds something that is not a version")]
    CorruptTag,
    #[error("an entry may carry at most {} tags", crate::entry::MAX_TAGS)]
    TooManyTags,
    #[error("async call made outside a tokio runtime")]
    NoRuntime,
}

impl BackendError {
    /// True for errors that were already reported when they first happened.
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(self, BackendError::Disabled | BackendError::Skipped)
    }
}

/// An entry's stored bytes (if any) and the current version of each tag asked for.
#[derive(Debug)]
pub(crate) struct ReadReply {
    pub entry: Option<Vec<u8>>,
    pub versions: Vec<Option<Version>>,
}

pub(crate) enum Backend {
    Disabled,
    Memory(MemoryStore),
    Redis(Box<RedisStore>),
}

/// Runs one operation on whichever backend this is; `$run` picks the sync or async runner.
macro_rules! dispatch {
    ($self:ident, $memory:ident => $on_memory:expr, $store:ident => $op:expr, $run:ident $(.$await:ident)?) => {
        match $self {
            Backend::Disabled => Err(BackendError::Disabled),
            Backend::Memory($memory) => Ok($on_memory),
            Backend::Redis($store) => $store.$run($op)$(.$await)?,
        }
    };
}

impl Backend {
    pub(crate) fn read(&self, entry: &str, tags: &[TagKey]) -> Result<ReadReply, BackendError> {
        dispatch!(self, m => m.read(entry, tags), r => commands::read(r.topology(), entry, tags), run)
    }

    pub(crate) async fn read_async(
        &self,
        entry: &str,
        tags: &[TagKey],
    ) -> Result<ReadReply, BackendError> {
        dispatch!(self, m => m.read(entry, tags), r => commands::read(r.topology(), entry, tags), run_async.await)
    }

    pub(crate) fn read_tags(&self, tags: &[TagKey]) -> Result<Vec<Option<Version>>, BackendError> {
        dispatch!(self, m => m.read_tags(tags), r => commands::read_tags(r.topology(), tags), run)
    }

    pub(crate) async fn read_tags_async(
        &self,
        tags: &[TagKey],
    ) -> Result<Vec<Option<Version>>, BackendError> {
        dispatch!(self, m => m.read_tags(tags), r => commands::read_tags(r.topology(), tags), run_async.await)
    }

    pub(crate) fn create_tags(
        &self,
        tags: &[(TagKey, Version)],
        lifetime: Option<Duration>,
    ) -> Result<Vec<Version>, BackendError> {
        dispatch!(self, m => m.create_tags(tags, lifetime), r => commands::create_tags(tags, lifetime), run)
    }

    pub(crate) async fn create_tags_async(
        &self,
        tags: &[(TagKey, Version)],
        lifetime: Option<Duration>,
    ) -> Result<Vec<Version>, BackendError> {
        dispatch!(self, m => m.create_tags(tags, lifetime), r => commands::create_tags(tags, lifetime), run_async.await)
    }

    pub(crate) fn write_stamped(
        &self,
        entry: &str,
        observed: Observed,
        payload: &[u8],
        lifetimes: (Option<Duration>, Option<Duration>),
    ) -> Result<bool, BackendError> {
        let (lifetime, tag_lifetime) = lifetimes;
        match self {
            Backend::Disabled => Err(BackendError::Disabled),
            Backend::Memory(m) => {
                Ok(m.write_stamped(entry, observed, payload, lifetime, tag_lifetime))
            }
            Backend::Redis(store) if store.topology() == Topology::Cluster => {
                let mut observed = observed;
                let versions =
                    store.run(commands::create_tags(&observed.proposals(), tag_lifetime))?;
                observed.fill(&versions);
                let bytes = encode(&observed, payload)?;
                store
                    .run(commands::write(entry, &bytes, lifetime))
                    .map(|()| true)
            }
            Backend::Redis(store) => {
                let op =
                    commands::write_stamped(entry, &observed, payload, lifetime, tag_lifetime)?;
                store.run(op).map(|()| true)
            }
        }
    }

    pub(crate) async fn write_stamped_async(
        &self,
        entry: &str,
        observed: Observed,
        payload: &[u8],
        lifetimes: (Option<Duration>, Option<Duration>),
    ) -> Result<bool, BackendError> {
        let (lifetime, tag_lifetime) = lifetimes;
        match self {
            Backend::Disabled => Err(BackendError::Disabled),
            Backend::Memory(m) => {
                Ok(m.write_stamped(entry, observed, payload, lifetime, tag_lifetime))
            }
            Backend::Redis(store) if store.topology() == Topology::Cluster => {
                let mut observed = observed;
                let versions = store
                    .run_async(commands::create_tags(&observed.proposals(), tag_lifetime))
                    .await?;
                observed.fill(&versions);
                let bytes = encode(&observed, payload)?;
                store
                    .run_async(commands::write(entry, &bytes, lifetime))
                    .await
                    .map(|()| true)
            }
            Backend::Redis(store) => {
                let op =
                    commands::write_stamped(entry, &observed, payload, lifetime, tag_lifetime)?;
                store.run_async(op).await.map(|()| true)
            }
        }
    }

    pub(crate) fn delete(
        &self,
        entry: &str,
        tombstone: Vec<u8>,
        lifetime: Option<Duration>,
    ) -> Result<bool, BackendError> {
        dispatch!(self, m => m.delete(entry, tombstone, lifetime), r => commands::delete(entry, &tombstone, lifetime), run)
    }

    pub(crate) async fn delete_async(
        &self,
        entry: &str,
        tombstone: Vec<u8>,
        lifetime: Option<Duration>,
    ) -> Result<bool, BackendError> {
        dispatch!(self, m => m.delete(entry, tombstone, lifetime), r => commands::delete(entry, &tombstone, lifetime), run_async.await)
    }

    pub(crate) fn write_unless_deleted(
        &self,
        entry: &str,
        bytes: Vec<u8>,
        lifetime: Option<Duration>,
        seen: Option<&[u8]>,
    ) -> Result<bool, BackendError> {
        dispatch!(self, m => m.write_unless_deleted(entry, bytes, lifetime, seen), r => commands::write_unless_deleted(entry, &bytes, lifetime, seen), run)
    }

    pub(crate) async fn write_unless_deleted_async(
        &self,
        entry: &str,
        bytes: Vec<u8>,
        lifetime: Option<Duration>,
        seen: Option<&[u8]>,
    ) -> Result<bool, BackendError> {
        dispatch!(self, m => m.write_unless_deleted(entry, bytes, lifetime, seen), r => commands::write_unless_deleted(entry, &bytes, lifetime, seen), run_async.await)
    }

    pub(crate) fn bump(
        &self,
        tags: &[(TagKey, Version)],
        lifetime: Option<Duration>,
    ) -> Result<(), BackendError> {
        dispatch!(self, m => m.bump(tags, lifetime), r => commands::bump(tags, lifetime), run)
    }

    pub(crate) async fn bump_async(
        &self,
        tags: &[(TagKey, Version)],
        lifetime: Option<Duration>,
    ) -> Result<(), BackendError> {
        dispatch!(self, m => m.bump(tags, lifetime), r => commands::bump(tags, lifetime), run_async.await)
    }

    /// The Redis store, when entries are shared with other processes (and so need a lock).
    pub(crate) fn shared(&self) -> Option<&RedisStore> {
        match self {
            Backend::Redis(store) => Some(store),
            _ => None,
        }
    }
}

/// The stampede lock's operations; only Redis needs them (in memory, one process is all there is).
impl RedisStore {
    pub(crate) fn acquire(
        &self,
        keys: &LockKeys,
        token: &[u8],
        lifetime: Duration,
        baton: Option<&[u8]>,
        read: (&str, &[TagKey]),
    ) -> Result<LockAttempt, BackendError> {
        self.run(commands::acquire(
            self.topology(),
            keys,
            token,
            lifetime,
            baton,
            read,
        ))
    }

    pub(crate) async fn acquire_async(
        &self,
        keys: &LockKeys,
        token: &[u8],
        lifetime: Duration,
        baton: Option<&[u8]>,
        read: (&str, &[TagKey]),
    ) -> Result<LockAttempt, BackendError> {
        self.run_async(commands::acquire(
            self.topology(),
            keys,
            token,
            lifetime,
            baton,
            read,
        ))
        .await
    }

    pub(crate) fn release(
        &self,
        keys: &LockKeys,
        token: &[u8],
        lifetime: Duration,
    ) -> Result<(), BackendError> {
        self.run(commands::release(keys, token, lifetime))
    }

    pub(crate) async fn release_async(
        &self,
        keys: &LockKeys,
        token: &[u8],
        lifetime: Duration,
    ) -> Result<(), BackendError> {
        self.run_async(commands::release(keys, token, lifetime))
            .await
    }

    pub(crate) fn wait_for_wake(
        &self,
        keys: &LockKeys,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        self.run(commands::wait_for_wake(keys, timeout))
    }

    pub(crate) async fn wait_for_wake_async(
        &self,
        keys: &LockKeys,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, BackendError> {
        self.run_async(commands::wait_for_wake(keys, timeout)).await
    }
}

fn encode(observed: &Observed, payload: &[u8]) -> Result<Vec<u8>, BackendError> {
    crate::entry::encode(observed, payload).ok_or(BackendError::TooManyTags)
}
