//! The Redis commands behind each [`Operation`], and the reading of their replies.
//!
//! An operation becomes one [`Round`]: commands sent in one round trip (a pipeline on one
//! server; on a cluster, each command to its key's shard, all in flight at once) and how to read
//! their replies. The sync and async connections send the same rounds.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Cmd, Script, Value};

use crate::engine::Expiry;
use crate::engine::{EntryWrite, LockAttempt, ManyReply, Operation, ReadReply, Reply, Ttl};
use crate::error::BackendError;
use crate::format::{self, LockKeys, Observed, TagKey, Version};

/// How the server spreads keys: a multi-key command must stay within one slot on a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topology {
    Standalone,
    Cluster,
}

/// One round trip: the commands, and how to read their replies (one per command, in order).
pub(crate) struct Round {
    pub commands: Vec<Cmd>,
    /// The script a command calls by hash, if any: loaded and the round sent again on `NOSCRIPT`.
    pub script: Option<&'static Lua>,
    /// A blocking command may wait this long for its reply (beyond the socket timeout); it is
    /// sent on a connection of its own.
    pub blocks_for: Option<Duration>,
    reading: Reading,
}

/// How a round's replies become a [`Reply`].
#[derive(Clone, Copy)]
enum Reading {
    /// The entry's read, then a `PTTL` of it when `ttl`, then `tag_ttls` more (the tags', for
    /// the near cache's expiry).
    Entry {
        topology: Topology,
        ttl: bool,
        tag_ttls: usize,
    },
    Entries {
        topology: Topology,
        entries: usize,
    },
    /// Tags' versions, then `ttls` replies of `PTTL`.
    Versions {
        topology: Topology,
        ttls: usize,
    },
    Created,
    Written,
    WrittenUnlessDeleted,
    Deleted,
    Ok,
    Lock {
        topology: Topology,
        skipped: usize,
        ttl: bool,
    },
    Woken,
}

/// A Lua script rtc runs by hash (`EVALSHA`), loading it when the server does not know it.
pub(crate) struct Lua {
    code: &'static str,
    hash: String,
}

impl Lua {
    fn new(code: &'static str) -> Self {
        Self {
            code,
            hash: Script::new(code).get_hash().to_owned(),
        }
    }
}

static WRITE_STAMPED: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("scripts/write_stamped.lua")));
static CREATE_TAG: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("scripts/create_tag.lua")));
static RELEASE_LOCK: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(include_str!("scripts/release_lock.lua")));

impl Round {
    /// Commands that call no script and do not block, read as `reading` says.
    fn plain(commands: Vec<Cmd>, reading: Reading) -> Round {
        Round {
            commands,
            script: None,
            blocks_for: None,
            reading,
        }
    }

    /// The commands of `operation` for a server of this topology.
    pub(crate) fn of(topology: Topology, operation: Operation<'_>) -> Result<Self, BackendError> {
        let round = Round::plain;
        Ok(match operation {
            Operation::Read {
                entry,
                tags,
                ttl,
                expiry,
            } => Round::read(topology, entry, tags, ttl, expiry),
            Operation::ReadTags { tags, ttls_of } => {
                let mut commands = match tags {
                    [] => Vec::new(),
                    tags => get_all(topology, tags.iter().map(TagKey::as_str)),
                };
                commands.extend(ttls_of.iter().map(|entry| pttl(entry)));
                round(
                    commands,
                    Reading::Versions {
                        topology,
                        ttls: ttls_of.len(),
                    },
                )
            }
            Operation::CreateTags { tags, lifetime } => Round {
                script: Some(&CREATE_TAG),
                ..round(create_tags(tags, lifetime), Reading::Created)
            },
            Operation::ReadMany { entries, tags } => Round::read_many(topology, entries, tags),
            Operation::WriteStamped {
                writes,
                lifetime,
                tag_lifetime,
            } => Round {
                script: Some(&WRITE_STAMPED),
                ..round(
                    vec![write_stamped(writes, lifetime, tag_lifetime)?],
                    Reading::Written,
                )
            },
            // Each entry alone (a cluster may hold them on different nodes), through the
            // stamped-write script with no tag to stamp, so that it keeps a delete's lineage.
            Operation::Write { writes, lifetime } => {
                let commands = writes
                    .iter()
                    .map(|write| {
                        let bytes = encode(&write.observed, write.payload)?;
                        Ok(write_entry(write.entry, &bytes, lifetime, ANY_LINEAGE))
                    })
                    .collect::<Result<_, BackendError>>()?;
                Round {
                    script: Some(&WRITE_STAMPED),
                    ..round(commands, Reading::Written)
                }
            }
            Operation::WriteUnlessDeleted {
                entry,
                observed,
                payload,
                lifetime,
                stale_window,
            } => {
                let bytes = format::encode_with_window(observed, stale_window, payload)
                    .ok_or(BackendError::TooManyTags)?;
                let lifetime = lifetime.map(|lifetime| lifetime.saturating_add(stale_window));
                let lineage = observed.tombstone.as_deref().unwrap_or_default();
                Round {
                    script: Some(&WRITE_STAMPED),
                    ..round(
                        vec![write_entry(entry, &bytes, lifetime, lineage)],
                        Reading::WrittenUnlessDeleted,
                    )
                }
            }
            Operation::Delete {
                entry,
                tombstone,
                lifetime,
            } => {
                let mut set = command("SET");
                set.arg(entry).arg(tombstone).arg("GET");
                round(vec![with_lifetime(set, lifetime)], Reading::Deleted)
            }
            Operation::Invalidate { tags, lifetime } => {
                let commands = tags
                    .iter()
                    .map(|(tag, version)| {
                        let mut set = command("SET");
                        set.arg(tag.as_str()).arg(version.as_bytes());
                        with_lifetime(set, lifetime)
                    })
                    .collect();
                round(commands, Reading::Ok)
            }
            Operation::Acquire {
                lock,
                token,
                lifetime,
                baton,
                entry,
                tags,
                ttl,
            } => {
                let mut commands = acquire(lock, token, lifetime, baton);
                let skipped = commands.len() - 2;
                commands.extend(read(topology, entry, tags));
                commands.extend(ttl.then(|| pttl(entry)));
                round(
                    commands,
                    Reading::Lock {
                        topology,
                        skipped,
                        ttl,
                    },
                )
            }
            Operation::Release {
                lock,
                token,
                lifetime,
            } => {
                let mut evalsha = command("EVALSHA");
                evalsha
                    .arg(&RELEASE_LOCK.hash)
                    .arg(2)
                    .arg(&lock.lock)
                    .arg(&lock.wake)
                    .arg(token)
                    .arg(millis(Some(lifetime)));
                Round {
                    script: Some(&RELEASE_LOCK),
                    ..round(vec![evalsha], Reading::Ok)
                }
            }
            Operation::WaitForWake { lock, timeout } => {
                let mut blpop = command("BLPOP");
                blpop
                    .arg(&lock.wake)
                    .arg(format!("{:.3}", timeout.as_secs_f64().max(0.001)));
                Round {
                    blocks_for: Some(timeout),
                    ..round(vec![blpop], Reading::Woken)
                }
            }
        })
    }

    /// A lone `PING`: redis-rs sends it to every primary of a cluster (and answers once all
    /// have), to the one server otherwise.
    pub(crate) fn ping() -> Round {
        Round::plain(vec![command("PING")], Reading::Ok)
    }

    /// `get_many`: the entries and every tag, in one `MGET` on a server.
    pub(crate) fn read_many(topology: Topology, entries: &[&str], tags: &[TagKey]) -> Self {
        Round::plain(
            get_all(
                topology,
                entries
                    .iter()
                    .copied()
                    .chain(tags.iter().map(TagKey::as_str)),
            ),
            Reading::Entries {
                topology,
                entries: entries.len(),
            },
        )
    }

    /// The round of [`Operation::Read`]: the entry and its tags (with their times to live as
    /// `ttl` and `expiry` ask).
    pub(crate) fn read(
        topology: Topology,
        entry: &str,
        tags: &[TagKey],
        ttl: bool,
        expiry: bool,
    ) -> Round {
        let mut commands = read(topology, entry, tags);
        let ttl = ttl || expiry;
        commands.extend(ttl.then(|| pttl(entry)));
        let tag_ttls = if expiry { tags.len() } else { 0 };
        if expiry {
            commands.extend(tags.iter().map(|tag| pttl(tag.as_str())));
        }
        Round::plain(
            commands,
            Reading::Entry {
                topology,
                ttl,
                tag_ttls,
            },
        )
    }

    /// The round that loads this round's script, when `sent` failed because the server did not
    /// know it (after a restart or `SCRIPT FLUSH`); the round is then sent once more.
    pub(crate) fn script_load(&self, sent: &redis::RedisResult<Vec<Value>>) -> Option<Round> {
        let script = self.script?;
        let missing = matches!(sent, Err(error) if unknown_script(error));
        missing.then(|| {
            let mut load = command("SCRIPT");
            load.arg("LOAD").arg(script.code);
            Round::plain(vec![load], Reading::Ok)
        })
    }

    /// Reads the replies of this round's commands.
    pub(crate) fn reply(&self, replies: Vec<Value>) -> Result<Reply, BackendError> {
        Ok(match self.reading {
            Reading::Entry {
                topology,
                ttl,
                tag_ttls,
            } => {
                let mut replies = replies;
                let tag_ttls = ttls_at_end(&mut replies, tag_ttls)?;
                let ttl = match ttl {
                    true => ttls_at_end(&mut replies, 1)?.pop().unwrap_or_default(),
                    false => Ttl::Unasked,
                };
                let mut read = entry_and_versions(values_of(topology, replies)?)?;
                read.ttl = ttl;
                if ttl != Ttl::Unasked && tag_ttls.len() == read.versions.len() {
                    read.expiry = tag_ttls
                        .iter()
                        .fold(ttl.expiry(), |expiry, tag| expiry.min(tag.expiry()));
                }
                Reply::Read(read)
            }
            Reading::Entries { topology, entries } => {
                Reply::Many(many_reply(topology, replies, entries)?)
            }
            Reading::Versions { topology, ttls } => {
                let mut replies = replies;
                let ttls = ttls_at_end(&mut replies, ttls)?;
                let versions = match replies.is_empty() {
                    true => Vec::new(),
                    false => values_of(topology, replies)?
                        .into_iter()
                        .map(version)
                        .collect::<Result<_, _>>()?,
                };
                match ttls.is_empty() {
                    true => Reply::Versions(versions),
                    false => Reply::VersionsAndTtls(versions, ttls),
                }
            }
            Reading::Created => Reply::Created(
                replies
                    .into_iter()
                    .map(|reply| {
                        bulk(reply)?
                            .as_deref()
                            .and_then(Version::from_bytes)
                            .ok_or(BackendError::UnexpectedReply)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Reading::Written => Reply::Done(true),
            Reading::WrittenUnlessDeleted => match replies.as_slice() {
                [Value::Int(written)] => Reply::Done(*written == 1),
                _ => return Err(BackendError::UnexpectedReply),
            },
            Reading::Deleted => match <[Value; 1]>::try_from(replies) {
                Ok([old]) => Reply::Done(bulk(old)?.is_some_and(|old| format::is_live(&old))),
                Err(_) => return Err(BackendError::UnexpectedReply),
            },
            Reading::Ok => Reply::Ok,
            Reading::Lock {
                topology,
                skipped,
                ttl,
            } => {
                let mut replies = replies;
                let entry_ttl = match ttl {
                    true => ttls_at_end(&mut replies, 1)?.pop().unwrap_or_default(),
                    false => Ttl::Unasked,
                };
                let mut replies = replies.into_iter().skip(skipped);
                let (Some(holder), Some(ttl)) = (replies.next(), replies.next()) else {
                    return Err(BackendError::UnexpectedReply);
                };
                let lock_ttl = match ttl {
                    Value::Int(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
                    _ => Duration::ZERO,
                };
                let mut read = entry_and_versions(values_of(topology, replies.collect())?)?;
                read.ttl = entry_ttl;
                Reply::Lock(LockAttempt {
                    holder: bulk(holder)?,
                    lock_ttl,
                    read,
                })
            }
            Reading::Woken => match <[Value; 1]>::try_from(replies) {
                Ok([Value::Nil]) => Reply::Woken(None),
                Ok([Value::Array(pair)]) => match <[Value; 2]>::try_from(pair) {
                    Ok([_, token]) => Reply::Woken(bulk(token)?),
                    Err(_) => return Err(BackendError::UnexpectedReply),
                },
                _ => return Err(BackendError::UnexpectedReply),
            },
        })
    }
}

fn command(name: &str) -> Cmd {
    redis::cmd(name)
}

/// Bytes set aside per key when a command's size is known in advance.
const KEY_ROOM: usize = 56;

/// Commands that read `keys`: one `MGET` on a server; one `GET` per key on a cluster, whose
/// keys live in different slots.
pub(super) fn get_all<'a>(topology: Topology, keys: impl IntoIterator<Item = &'a str>) -> Vec<Cmd> {
    match topology {
        Topology::Standalone => {
            let keys = keys.into_iter();
            // rtc's keys are 51-53 bytes: one allocation each for the arguments and their bytes.
            let count = keys.size_hint().0;
            let mut mget = Cmd::with_capacity(1 + count, 4 + KEY_ROOM * count);
            mget.arg("MGET");
            for key in keys {
                mget.arg(key);
            }
            vec![mget]
        }
        Topology::Cluster => keys
            .into_iter()
            .map(|key| {
                let mut get = command("GET");
                get.arg(key);
                get
            })
            .collect(),
    }
}

/// The entry and every tag's version.
fn read(topology: Topology, entry: &str, tags: &[TagKey]) -> Vec<Cmd> {
    get_all(
        topology,
        std::iter::once(entry).chain(tags.iter().map(TagKey::as_str)),
    )
}

/// The replies of a `get_many`'s read: `entries` entries, then the versions of the tags read
/// after them (none when its connection knew them: `inband`).
pub(super) fn many_reply(
    topology: Topology,
    replies: Vec<Value>,
    entries: usize,
) -> Result<ManyReply, BackendError> {
    let mut values = values_of(topology, replies)?;
    if values.len() < entries {
        return Err(BackendError::UnexpectedReply);
    }
    let tags = values.split_off(entries);
    Ok(ManyReply {
        entries: values.into_iter().map(bulk).collect::<Result<_, _>>()?,
        versions: tags.into_iter().map(version).collect::<Result<_, _>>()?,
    })
}

/// The replies of [`get_all`]'s commands, one value per key.
fn values_of(topology: Topology, replies: Vec<Value>) -> Result<Vec<Value>, BackendError> {
    match topology {
        Topology::Standalone => match <[Value; 1]>::try_from(replies) {
            Ok([Value::Array(values)]) => Ok(values),
            _ => Err(BackendError::UnexpectedReply),
        },
        Topology::Cluster => Ok(replies),
    }
}

fn entry_and_versions(values: Vec<Value>) -> Result<ReadReply, BackendError> {
    let mut values = values.into_iter();
    let entry = values.next().map(bulk).transpose()?.flatten();
    let versions = values.map(version).collect::<Result<_, _>>()?;
    Ok(ReadReply {
        entry,
        versions,
        ttl: Ttl::Unasked,
        expiry: Expiry::Unknown,
    })
}

/// `PTTL entry`: what is left of its time to live, on the server's clock.
pub(super) fn pttl(entry: &str) -> Cmd {
    on_key("PTTL", entry)
}

/// `name key`, with room for exactly that (a command grown one argument at a time allocates
/// twice more).
pub(super) fn on_key(name: &str, key: &str) -> Cmd {
    let mut command = Cmd::with_capacity(2, name.len() + key.len());
    command.arg(name).arg(key);
    command
}

/// Takes the replies of the `count` `PTTL`s that end a round.
pub(super) fn ttls_at_end(
    replies: &mut Vec<Value>,
    count: usize,
) -> Result<Vec<Ttl>, BackendError> {
    let start = replies
        .len()
        .checked_sub(count)
        .ok_or(BackendError::UnexpectedReply)?;
    replies
        .split_off(start)
        .into_iter()
        .map(|reply| match reply {
            Value::Int(millis) => Ok(Ttl::from_pttl(millis)),
            _ => Err(BackendError::UnexpectedReply),
        })
        .collect()
}

/// One run of the create-tag script per tag: each touches one key, so it runs on a cluster too.
fn create_tags(tags: &[(TagKey, Version)], lifetime: Option<Duration>) -> Vec<Cmd> {
    tags.iter()
        .map(|(tag, proposed)| {
            let mut evalsha = command("EVALSHA");
            evalsha
                .arg(&CREATE_TAG.hash)
                .arg(1)
                .arg(tag.as_str())
                .arg(proposed.as_bytes())
                .arg(millis(lifetime));
            evalsha
        })
        .collect()
}

/// One call of the stamped-write script for every write of a batch (`scripts/write_stamped.lua`
/// says what KEYS and ARGV hold): each tag is named once, however many entries carry it.
fn write_stamped(
    writes: &[EntryWrite<'_>],
    lifetime: Option<Duration>,
    tag_lifetime: Option<Duration>,
) -> Result<Cmd, BackendError> {
    match writes {
        [write] => write_one_stamped(write, lifetime, tag_lifetime),
        _ => write_many_stamped(writes, lifetime, tag_lifetime),
    }
}

/// [`write_stamped`] for several writes, whose tags may repeat.
fn write_many_stamped(
    writes: &[EntryWrite<'_>],
    lifetime: Option<Duration>,
    tag_lifetime: Option<Duration>,
) -> Result<Cmd, BackendError> {
    let mut tags: Vec<&TagKey> = Vec::new();
    // Where each tag stands in KEYS, built only when a second entry needs it: one entry's tags
    // are distinct, so a lone `set` (the common case) hashes nothing.
    let mut positions: Option<HashMap<&TagKey, usize>> = None;
    let mut entries = Vec::with_capacity(writes.len());
    for (index, write) in writes.iter().enumerate() {
        let header = format::header(&write.observed).ok_or(BackendError::TooManyTags)?;
        let stamp: Vec<(usize, &[u8])> = write
            .observed
            .canonical
            .iter()
            .map(|(tag, _)| (tag, &b""[..]))
            .chain(
                write
                    .observed
                    .implicit
                    .iter()
                    .map(|(tag, _)| (tag, &tag.id()[..])),
            )
            .map(|(tag, before)| {
                if index == 0 {
                    tags.push(tag);
                    return (tags.len(), before);
                }
                let positions = positions.get_or_insert_with(|| {
                    tags.iter()
                        .enumerate()
                        .map(|(at, tag)| (*tag, at + 1))
                        .collect()
                });
                let at = *positions.entry(tag).or_insert_with(|| {
                    tags.push(tag);
                    tags.len()
                });
                (at, before)
            })
            .collect();
        entries.push((write, header, stamp));
    }
    let mut evalsha = command("EVALSHA");
    evalsha
        .arg(&WRITE_STAMPED.hash)
        .arg(tags.len() + writes.len());
    for tag in &tags {
        evalsha.arg(tag.as_str());
    }
    for write in writes {
        evalsha.arg(write.entry);
    }
    evalsha
        .arg(tags.len())
        .arg(millis(tag_lifetime))
        .arg(millis(lifetime));
    for _ in &tags {
        evalsha.arg(Version::fresh().as_bytes());
    }
    for (write, header, stamp) in entries {
        evalsha
            .arg(&header[..])
            .arg(write.payload)
            .arg(ANY_LINEAGE)
            .arg(stamp.len());
        for (at, before) in stamp {
            evalsha.arg(at).arg(before);
        }
    }
    Ok(evalsha)
}

/// The stamped-write script's call for a lone `set`: the same KEYS and ARGV as a batch of one,
/// written straight into the command. One entry's tags are distinct, so the `i`-th tag stands at
/// position `i` of KEYS, with nothing to look up.
fn write_one_stamped(
    write: &EntryWrite<'_>,
    lifetime: Option<Duration>,
    tag_lifetime: Option<Duration>,
) -> Result<Cmd, BackendError> {
    let header = format::header(&write.observed).ok_or(BackendError::TooManyTags)?;
    let observed = &write.observed;
    let tags = observed.canonical.len() + observed.implicit.len();
    let mut evalsha = Cmd::with_capacity(
        3 * tags + 10,
        64 * tags + write.entry.len() + write.payload.len() + 128,
    );
    evalsha
        .arg("EVALSHA")
        .arg(&WRITE_STAMPED.hash)
        .arg(tags + 1);
    for (tag, _) in observed.all() {
        evalsha.arg(tag.as_str());
    }
    evalsha
        .arg(write.entry)
        .arg(tags)
        .arg(millis(tag_lifetime))
        .arg(millis(lifetime));
    for _ in 0..tags {
        evalsha.arg(Version::fresh().as_bytes());
    }
    evalsha
        .arg(&header[..])
        .arg(write.payload)
        .arg(ANY_LINEAGE)
        .arg(tags);
    for (at, (tag, _)) in observed.all().enumerate() {
        let before = if at < observed.canonical.len() {
            &b""[..]
        } else {
            &tag.id()[..]
        };
        evalsha.arg(at + 1).arg(before);
    }
    Ok(evalsha)
}

/// `SET lock token NX GET PX lifetime` and `PTTL lock`, after passing `baton` on if there is one.
fn acquire(lock: &LockKeys, token: &[u8], lifetime: Duration, baton: Option<&[u8]>) -> Vec<Cmd> {
    let lifetime_ms = millis(Some(lifetime));
    let mut commands = Vec::with_capacity(4);
    if let Some(baton) = baton {
        let mut push = command("LPUSH");
        push.arg(&lock.wake).arg(baton);
        let mut expire = command("PEXPIRE");
        expire.arg(&lock.wake).arg(lifetime_ms);
        commands.extend([push, expire]);
    }
    let mut set = command("SET");
    set.arg(&lock.lock)
        .arg(token)
        .arg("NX")
        .arg("GET")
        .arg("PX")
        .arg(lifetime_ms);
    let mut pttl = command("PTTL");
    pttl.arg(&lock.lock);
    commands.extend([set, pttl]);
    commands
}

fn encode(observed: &Observed, payload: &[u8]) -> Result<Vec<u8>, BackendError> {
    format::encode(observed, payload).ok_or(BackendError::TooManyTags)
}

/// The stamped-write script's guard for a write that may replace an entry of any lineage (a
/// `set`: its value is fresh now).
const ANY_LINEAGE: &[u8] = b"*";

/// The stamped-write script's call for one entry whose bytes are whole (no tag to stamp):
/// written over an entry of the lineage `guard` names (the tombstone a decorated computation
/// read, empty for none), or over any with [`ANY_LINEAGE`]. Replies how many were written.
fn write_entry(entry: &str, bytes: &[u8], lifetime: Option<Duration>, guard: &[u8]) -> Cmd {
    // Sized at once: grown argument by argument, its buffer was copied four times.
    let mut evalsha = Cmd::with_capacity(11, entry.len() + bytes.len() + guard.len() + 96);
    evalsha
        .arg("EVALSHA")
        .arg(&WRITE_STAMPED.hash)
        .arg(1)
        .arg(entry)
        .arg(0)
        .arg(0)
        .arg(millis(lifetime))
        .arg(bytes)
        .arg(&b""[..])
        .arg(guard)
        .arg(0);
    evalsha
}

/// True when `error` says the server does not know the script called by hash (after a restart
/// or `SCRIPT FLUSH`): it is then loaded and the round sent again.
pub(super) fn unknown_script(error: &redis::RedisError) -> bool {
    error.code() == Some("NOSCRIPT")
}

/// `command` with `PX` and `lifetime` in milliseconds, if it has one.
pub(super) fn with_lifetime(mut command: Cmd, lifetime: Option<Duration>) -> Cmd {
    if let Some(lifetime) = lifetime {
        command.arg("PX").arg(millis(Some(lifetime)));
    }
    command
}

/// Milliseconds, at least 1 for any non-zero lifetime; 0 stands for "no lifetime".
fn millis(lifetime: Option<Duration>) -> u64 {
    lifetime.map_or(0, |lifetime| {
        u64::try_from(lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    })
}

pub(super) fn bulk(value: Value) -> Result<Option<Vec<u8>>, BackendError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        _ => Err(BackendError::UnexpectedReply),
    }
}

/// A tag's stored version; a value that is not 8 bytes is treated as no version.
pub(super) fn version(value: Value) -> Result<Option<Version>, BackendError> {
    Ok(bulk(value)?.as_deref().and_then(Version::from_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{EntryKeys, KeySpace};

    /// The command's arguments, with the proposed versions (fresh, so different in every
    /// command) left out.
    fn arguments_but_versions(command: &Cmd, tags: usize) -> Vec<Vec<u8>> {
        let versions = 3 + tags + 4..3 + tags + 4 + tags;
        command
            .args_iter()
            .enumerate()
            .filter(|(at, _)| !versions.contains(at))
            .map(|(_, arg)| match arg {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                _ => b"<cursor>".to_vec(),
            })
            .collect()
    }

    #[test]
    fn a_lone_stamped_write_is_the_batch_call_of_one() {
        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, &["k"], ["b", "a"], vec![space.implicit_tag("f")]);
        let write = EntryWrite::unstamped(&keys, b"payload");
        let lifetimes = (
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(600)),
        );
        let lone = write_one_stamped(&write, lifetimes.0, lifetimes.1).unwrap();
        let batch =
            write_many_stamped(std::slice::from_ref(&write), lifetimes.0, lifetimes.1).unwrap();
        let tags = keys.tags().len();
        assert_eq!(
            tags, 4,
            "the namespace tag, two user tags, one implicit tag"
        );
        assert_eq!(
            arguments_but_versions(&lone, tags),
            arguments_but_versions(&batch, tags)
        );
        assert_eq!(lone.args_iter().count(), batch.args_iter().count());
    }
}
