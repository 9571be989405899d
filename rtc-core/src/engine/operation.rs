//! The operations a flow asks a backend for, and their replies: one round trip each on Redis.

use std::time::Duration;

use crate::error::BackendError;
use crate::format::{EntryKeys, LockKeys, Observed, TagKey, Version};

/// One round trip's worth of work, as data. Each backend answers it in its own way: the memory
/// store at once under its lock, Redis with the commands `backend::redis::commands` builds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Operation<'a> {
    /// The entry's stored bytes and every tag's version; with `ttl`, also what is left of the
    /// entry's time to live (asked by callers with a stale option: [`ReadReply::ttl`]); with
    /// `expiry`, what is left of the entry's and every tag's (for the near cache:
    /// [`ReadReply::expiry`]).
    Read {
        entry: &'a str,
        tags: &'a [TagKey],
        ttl: bool,
        expiry: bool,
    },
    /// Several entries' stored bytes and the versions of every tag they carry, in one round
    /// trip: `tags` holds each tag once, whatever the number of entries carrying it.
    ReadMany {
        entries: &'a [&'a str],
        tags: &'a [TagKey],
    },
    /// Tags' versions, and what is left of the time to live of `ttls_of` (entries with a stale
    /// window whose reader did not ask for it with the entry).
    ReadTags {
        tags: &'a [TagKey],
        ttls_of: &'a [&'a str],
    },
    /// Gives every tag that has no (valid) version the proposed one; replies with the version
    /// each tag has afterwards.
    CreateTags {
        tags: &'a [(TagKey, Version)],
        lifetime: Option<Duration>,
    },
    /// Stamps each entry with its tags' current versions (creating missing ones, each tag
    /// once) and writes them all, atomically. Only for backends that can
    /// ([`crate::backend::Backend::stamps_atomically`]).
    WriteStamped {
        writes: &'a [EntryWrite<'a>],
        lifetime: Option<Duration>,
        tag_lifetime: Option<Duration>,
    },
    /// Writes each entry stamped with its `observed` (every tag has a version), replacing
    /// whatever is there.
    Write {
        writes: &'a [EntryWrite<'a>],
        lifetime: Option<Duration>,
    },
    /// Writes the entry stamped with `observed` unless it was deleted after the writer read
    /// `observed.tombstone`; replies whether it was written.
    /// With a non-zero `stale_window` the entry records it (format 3) and lives `lifetime`
    /// plus the window.
    WriteUnlessDeleted {
        entry: &'a str,
        observed: &'a Observed,
        payload: &'a [u8],
        lifetime: Option<Duration>,
        stale_window: Duration,
    },
    /// Replaces the entry with `tombstone`; replies whether a live entry was there.
    Delete {
        entry: &'a str,
        tombstone: &'a [u8],
        lifetime: Option<Duration>,
    },
    /// Gives every tag a new version: the entries stamped with the old one miss from now on.
    Invalidate {
        tags: &'a [(TagKey, Version)],
        lifetime: Option<Duration>,
    },
    /// Tries to take an entry's stampede lock (passing a received wake-up token on first) and
    /// reads the entry (as `Read`, `ttl` included), in one round trip.
    Acquire {
        lock: &'a LockKeys,
        token: &'a [u8],
        lifetime: Duration,
        baton: Option<&'a [u8]>,
        entry: &'a str,
        tags: &'a [TagKey],
        ttl: bool,
    },
    /// Releases the lock if `token` still holds it, and wakes its waiters.
    Release {
        lock: &'a LockKeys,
        token: &'a [u8],
        lifetime: Duration,
    },
    /// Blocks until a wake-up token arrives for the lock, or `timeout` passes.
    WaitForWake {
        lock: &'a LockKeys,
        timeout: Duration,
    },
}

impl Operation<'_> {
    /// The keys this operation changes, whose near copies must not outlive it: entries
    /// written or deleted, tags invalidated. (Creating a missing tag changes nothing a near
    /// entry depends on: a near entry was read with every tag present.)
    pub(crate) fn changed_keys(&self) -> Vec<&str> {
        match self {
            Operation::WriteStamped { writes, .. } | Operation::Write { writes, .. } => {
                writes.iter().map(|write| write.entry).collect()
            }
            Operation::WriteUnlessDeleted { entry, .. } | Operation::Delete { entry, .. } => {
                vec![*entry]
            }
            Operation::Invalidate { tags, .. } => {
                tags.iter().map(|(tag, _)| tag.as_str()).collect()
            }
            Operation::Read { .. }
            | Operation::ReadMany { .. }
            | Operation::ReadTags { .. }
            | Operation::CreateTags { .. }
            | Operation::Acquire { .. }
            | Operation::Release { .. }
            | Operation::WaitForWake { .. } => Vec::new(),
        }
    }

    /// The word a warning uses for this operation when it fails.
    pub(crate) fn verb(&self) -> &'static str {
        match self {
            Operation::Read { .. } | Operation::ReadMany { .. } | Operation::ReadTags { .. } => {
                "read"
            }
            Operation::CreateTags { .. }
            | Operation::WriteStamped { .. }
            | Operation::Write { .. }
            | Operation::WriteUnlessDeleted { .. } => "write",
            Operation::Delete { .. } => "delete",
            Operation::Invalidate { .. } => "invalidate",
            Operation::Acquire { .. }
            | Operation::Release { .. }
            | Operation::WaitForWake { .. } => "lock",
        }
    }
}

/// One entry of a low-level write: where it goes, the tags it is stamped with, and the value.
#[derive(Clone, Debug)]
pub(crate) struct EntryWrite<'a> {
    pub entry: &'a str,
    /// The entry's tags; their versions are filled in before the entry is written.
    pub observed: Observed,
    pub payload: &'a [u8],
}

impl<'a> EntryWrite<'a> {
    /// `payload` under `keys`, its tags' versions yet to be read.
    pub(crate) fn unstamped(keys: &'a EntryKeys, payload: &'a [u8]) -> Self {
        Self {
            entry: &keys.entry,
            observed: keys.unobserved(),
            payload,
        }
    }
}

/// Several entries' stored bytes (if any), in the order asked for, and the current version of
/// each tag asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManyReply {
    pub entries: Vec<Option<Vec<u8>>>,
    pub versions: Vec<Option<Version>>,
}

/// An entry's stored bytes (if any) and the current version of each tag asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ReadReply {
    pub entry: Option<Vec<u8>>,
    pub versions: Vec<Option<Version>>,
    /// When the first of the keys read expires ([`Expiry::Unknown`] unless asked for).
    pub expiry: Expiry,
    /// What is left of the entry's time to live, if it was asked for (the memory backend
    /// always tells).
    pub ttl: Ttl,
}

/// How long a value read from Redis may live, as Redis said in the same round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Expiry {
    /// Not asked for: the value is not kept near.
    #[default]
    Unknown,
    /// No key it depends on expires.
    Never,
    /// The first of its keys expires this long after the read was sent, at the latest.
    After(Duration),
}

impl Expiry {
    /// This much earlier (a stale window: past it the value is stale, which is not kept).
    pub(crate) fn less(self, earlier: Duration) -> Expiry {
        match self {
            Expiry::After(left) => Expiry::After(left.saturating_sub(earlier)),
            Expiry::Never | Expiry::Unknown => self,
        }
    }

    /// The earlier of two expiries.
    pub(crate) fn min(self, other: Expiry) -> Expiry {
        match (self, other) {
            (Expiry::Unknown, _) | (_, Expiry::Unknown) => Expiry::Unknown,
            (Expiry::Never, other) | (other, Expiry::Never) => other,
            (Expiry::After(a), Expiry::After(b)) => Expiry::After(a.min(b)),
        }
    }
}

/// What is left of an entry's time to live, as the backend measures it (Redis's `PTTL`, on the
/// server's own clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Ttl {
    /// Not asked for.
    #[default]
    Unasked,
    /// The entry never expires.
    Forever,
    /// This much is left (zero: the entry is gone).
    Left(Duration),
}

impl Ttl {
    /// The near cache's view of it: how long a value depending on this key may be kept.
    pub(crate) fn expiry(self) -> Expiry {
        match self {
            Ttl::Unasked => Expiry::Unknown,
            Ttl::Forever => Expiry::Never,
            Ttl::Left(left) => Expiry::After(left),
        }
    }

    /// A `PTTL` reply: -1 for a key without expiry, -2 (or any other negative) for no key.
    pub(crate) fn from_pttl(millis: i64) -> Self {
        match millis {
            -1 => Ttl::Forever,
            ms if ms >= 0 => Ttl::Left(Duration::from_millis(ms.unsigned_abs())),
            _ => Ttl::Left(Duration::ZERO),
        }
    }
}

/// What an attempt to take an entry's stampede lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockAttempt {
    /// `None` when this caller took the lock; otherwise the holder's token.
    pub holder: Option<Vec<u8>>,
    /// How long the lock has left to live.
    pub lock_ttl: Duration,
    /// The entry and tag versions, read in the same round trip.
    pub read: ReadReply,
}

/// A backend's answer to an [`Operation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// To `Read`.
    Read(ReadReply),
    /// To `ReadMany`.
    Many(ManyReply),
    /// To `ReadTags` that asked no time to live: one version per tag asked for.
    Versions(Vec<Option<Version>>),
    /// To `ReadTags` that asked for times to live: the versions, then one per entry asked for.
    VersionsAndTtls(Vec<Option<Version>>, Vec<Ttl>),
    /// To `CreateTags`: the version each tag has now.
    Created(Vec<Version>),
    /// To `WriteStamped`, `Write`, `WriteUnlessDeleted` (whether it wrote) and `Delete` (whether
    /// a live entry was there).
    Done(bool),
    /// To `Invalidate` and `Release`.
    Ok,
    /// To `Acquire`.
    Lock(LockAttempt),
    /// To `WaitForWake`: the token that arrived, or `None` when the wait timed out.
    Woken(Option<Vec<u8>>),
}

/// Takes a reply apart, or says it is of another shape than the operation's.
macro_rules! reply_as {
    ($name:ident, $variant:ident, $output:ty) => {
        pub(crate) fn $name(self) -> Result<$output, BackendError> {
            match self {
                Reply::$variant(value) => Ok(value),
                _ => Err(BackendError::UnexpectedReply),
            }
        }
    };
}

impl Reply {
    reply_as!(into_read, Read, ReadReply);
    reply_as!(into_many, Many, ManyReply);
    reply_as!(into_created, Created, Vec<Version>);
    reply_as!(into_done, Done, bool);
    reply_as!(into_lock, Lock, LockAttempt);
    reply_as!(into_woken, Woken, Option<Vec<u8>>);

    /// The reply to `ReadTags`: the versions, and the times to live asked for (none asked:
    /// an empty list).
    pub(crate) fn into_versions_and_ttls(
        self,
    ) -> Result<(Vec<Option<Version>>, Vec<Ttl>), BackendError> {
        match self {
            Reply::Versions(versions) => Ok((versions, Vec::new())),
            Reply::VersionsAndTtls(versions, ttls) => Ok((versions, ttls)),
            _ => Err(BackendError::UnexpectedReply),
        }
    }
}
