//! The Redis commands behind each backend operation, and the parsing of their replies.
//!
//! Each operation is one [`Op`]: commands sent in one round trip (a pipeline on one server; on a
//! cluster, one batch per shard, sent concurrently) plus the function that reads their replies.
//! The sync and async connections run the same `Op`s, so the two APIs cannot drift apart.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Cmd, Script, Value};

use super::{BackendError, ReadReply};
use crate::entry::{self, Observed};
use crate::keys::{LockKeys, TagKey};
use crate::version::Version;

type Parse<T> = Box<dyn FnOnce(Vec<Value>) -> Result<T, BackendError> + Send + Sync>;

/// How the server spreads keys: a multi-key command must stay within one slot on a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topology {
    Standalone,
    Cluster,
}

/// One round trip: the commands, and how to read their replies (one per command, in order).
pub(crate) struct Op<T> {
    pub commands: Vec<Cmd>,
    /// The script a command calls by hash, if any; loaded and retried on `NOSCRIPT`.
    pub script: Option<&'static Script>,
    /// A blocking command may wait this long for its reply (beyond the socket timeout); it runs
    /// on a connection of its own.
    pub blocks_for: Option<Duration>,
    pub parse: Parse<T>,
}

impl<T> Op<T> {
    fn new(
        commands: Vec<Cmd>,
        parse: impl FnOnce(Vec<Value>) -> Result<T, BackendError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            commands,
            script: None,
            blocks_for: None,
            parse: Box::new(parse),
        }
    }
}

fn command(name: &str) -> Cmd {
    redis::cmd(name)
}

/// Commands that read `keys`: one `MGET` on a server; one `GET` per key on a cluster, whose
/// keys live in different slots.
fn get_all<'a>(topology: Topology, keys: impl IntoIterator<Item = &'a str>) -> Vec<Cmd> {
    match topology {
        Topology::Standalone => {
            let mut mget = command("MGET");
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

/// The entry and every tag's version, in one round trip.
pub(crate) fn read(topology: Topology, entry: &str, tags: &[TagKey]) -> Op<ReadReply> {
    Op::new(read_commands(topology, entry, tags), move |replies| {
        parse_read(values_of(topology, replies)?)
    })
}

fn read_commands(topology: Topology, entry: &str, tags: &[TagKey]) -> Vec<Cmd> {
    get_all(
        topology,
        std::iter::once(entry).chain(tags.iter().map(|tag| tag.as_str())),
    )
}

fn parse_read(values: Vec<Value>) -> Result<ReadReply, BackendError> {
    let mut values = values.into_iter();
    let entry = values.next().map(bulk).transpose()?.flatten();
    let versions = values.map(version).collect::<Result<_, _>>()?;
    Ok(ReadReply { entry, versions })
}

/// Every tag's version, in one round trip.
pub(crate) fn read_tags(topology: Topology, tags: &[TagKey]) -> Op<Vec<Option<Version>>> {
    let commands = get_all(topology, tags.iter().map(TagKey::as_str));
    Op::new(commands, move |replies| {
        values_of(topology, replies)?
            .into_iter()
            .map(version)
            .collect()
    })
}

/// `SET tag proposed NX GET`: creates a missing tag atomically and returns whichever version won.
pub(crate) fn create_tags(
    tags: &[(TagKey, Version)],
    lifetime: Option<Duration>,
) -> Op<Vec<Version>> {
    let commands = tags
        .iter()
        .map(|(tag, proposed)| {
            let mut set = command("SET");
            set.arg(tag.as_str())
                .arg(proposed.as_bytes())
                .arg("NX")
                .arg("GET");
            with_lifetime(set, lifetime)
        })
        .collect();
    let proposals: Vec<Version> = tags.iter().map(|(_, proposed)| *proposed).collect();
    Op::new(commands, move |replies| {
        replies
            .into_iter()
            .zip(proposals)
            .map(|(reply, proposed)| match bulk(reply)? {
                None => Ok(proposed),
                Some(existing) => Version::from_bytes(&existing).ok_or(BackendError::CorruptTag),
            })
            .collect()
    })
}

/// `SET entry bytes [PX lifetime]`.
pub(crate) fn write(entry: &str, bytes: &[u8], lifetime: Option<Duration>) -> Op<()> {
    let mut set = command("SET");
    set.arg(entry).arg(bytes);
    Op::new(vec![with_lifetime(set, lifetime)], |_| Ok(()))
}

/// Creates missing tags, stamps the entry with every tag's version and writes it, atomically
/// and in one round trip: the script touches only the keys it is given, all on one server (so
/// not on a cluster, whose tags live in other slots than the entry).
pub(crate) fn write_stamped(
    entry: &str,
    observed: &Observed,
    payload: &[u8],
    lifetime: Option<Duration>,
    tag_lifetime: Option<Duration>,
) -> Result<Op<()>, BackendError> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE_STAMPED_LUA));
    let header = entry::header(observed).ok_or(BackendError::TooManyTags)?;
    let mut evalsha = command("EVALSHA");
    evalsha
        .arg(SCRIPT.get_hash())
        .arg(1 + observed.canonical.len() + observed.implicit.len())
        .arg(entry);
    for (tag, _) in observed.all() {
        evalsha.arg(tag.as_str());
    }
    evalsha
        .arg(header)
        .arg(payload)
        .arg(millis(lifetime))
        .arg(millis(tag_lifetime));
    for _ in &observed.canonical {
        evalsha.arg(&b""[..]).arg(Version::fresh().as_bytes());
    }
    for (tag, _) in &observed.implicit {
        evalsha.arg(&tag.id()[..]).arg(Version::fresh().as_bytes());
    }
    Ok(Op {
        commands: vec![evalsha],
        script: Some(&SCRIPT),
        blocks_for: None,
        parse: Box::new(|_| Ok(())),
    })
}

/// KEYS: the entry, then its tags. ARGV: header, payload, entry lifetime in ms (0: none), tag
/// lifetime in ms (0: none), then per tag the bytes stored before its version and a proposed version.
const WRITE_STAMPED_LUA: &str = r"
local parts = { ARGV[1] }
local tag_ttl = tonumber(ARGV[4])
for i = 2, #KEYS do
  local before = ARGV[3 + 2 * (i - 1)]
  local proposed = ARGV[4 + 2 * (i - 1)]
  local current = redis.call('GET', KEYS[i])
  if (not current) or string.len(current) ~= 8 then
    if tag_ttl > 0 then
      redis.call('SET', KEYS[i], proposed, 'PX', tag_ttl)
    else
      redis.call('SET', KEYS[i], proposed)
    end
    current = proposed
  end
  parts[#parts + 1] = before
  parts[#parts + 1] = current
end
parts[#parts + 1] = ARGV[2]
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], table.concat(parts), 'PX', ttl)
else
  redis.call('SET', KEYS[1], table.concat(parts))
end
return 1
";

/// Replaces the entry with a tombstone (`SET … GET`): true when a live entry was there.
pub(crate) fn delete(entry: &str, tombstone: &[u8], lifetime: Option<Duration>) -> Op<bool> {
    let mut set = command("SET");
    set.arg(entry).arg(tombstone).arg("GET");
    Op::new(
        vec![with_lifetime(set, lifetime)],
        |replies| match <[Value; 1]>::try_from(replies) {
            Ok([reply]) => Ok(bulk(reply)?.is_some_and(|old| entry::is_live(&old))),
            Err(_) => Err(BackendError::UnexpectedReply),
        },
    )
}

/// Writes the entry unless it was deleted after `seen` (the tombstone the writer read, if any)
/// was read: true when written. One key, so it runs on a cluster too.
pub(crate) fn write_unless_deleted(
    entry: &str,
    bytes: &[u8],
    lifetime: Option<Duration>,
    seen: Option<&[u8]>,
) -> Op<bool> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE_UNLESS_DELETED_LUA));
    let mut evalsha = command("EVALSHA");
    evalsha
        .arg(SCRIPT.get_hash())
        .arg(1)
        .arg(entry)
        .arg(bytes)
        .arg(millis(lifetime))
        .arg(seen.unwrap_or_default());
    Op {
        commands: vec![evalsha],
        script: Some(&SCRIPT),
        blocks_for: None,
        parse: Box::new(|replies| match replies.as_slice() {
            [Value::Int(written)] => Ok(*written == 1),
            _ => Err(BackendError::UnexpectedReply),
        }),
    }
}

/// KEYS: the entry. ARGV: bytes, lifetime in ms (0: none), the tombstone the writer read ("": none).
const WRITE_UNLESS_DELETED_LUA: &str = r"
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  -- A key of another type (WRONGTYPE): nothing rtc wrote, so the write replaces it.
  current = false
end
if current and string.byte(current, 1) == 0 and current ~= ARGV[3] then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
";

/// Gives every tag a new version: entries stamped with the old one miss from now on.
pub(crate) fn bump(tags: &[(TagKey, Version)], lifetime: Option<Duration>) -> Op<()> {
    let commands = tags
        .iter()
        .map(|(tag, version)| {
            let mut set = command("SET");
            set.arg(tag.as_str()).arg(version.as_bytes());
            with_lifetime(set, lifetime)
        })
        .collect();
    Op::new(commands, |_| Ok(()))
}

fn with_lifetime(mut command: Cmd, lifetime: Option<Duration>) -> Cmd {
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

fn bulk(value: Value) -> Result<Option<Vec<u8>>, BackendError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        _ => Err(BackendError::UnexpectedReply),
    }
}

/// A tag's stored version; a value that is not 8 bytes is treated as no version.
fn version(value: Value) -> Result<Option<Version>, BackendError> {
    Ok(bulk(value)?.as_deref().and_then(Version::from_bytes))
}

/// What an attempt to take an entry's stampede lock found.
#[derive(Debug)]
pub(crate) struct LockAttempt {
    /// `None` when this caller took the lock; otherwise the holder's token.
    pub holder: Option<Vec<u8>>,
    /// How long the lock has left to live.
    pub lock_ttl: Duration,
    /// The entry and tag versions, read in the same round trip.
    pub read: ReadReply,
}

/// Tries to take the lock and reads the entry, in one round trip. `baton`: a wake-up token this
/// caller received and passes on to the next waiter.
pub(crate) fn acquire(
    topology: Topology,
    keys: &LockKeys,
    token: &[u8],
    lifetime: Duration,
    baton: Option<&[u8]>,
    read: (&str, &[TagKey]),
) -> Op<LockAttempt> {
    let lifetime_ms = millis(Some(lifetime));
    let mut commands = Vec::new();
    if let Some(baton) = baton {
        let mut push = command("LPUSH");
        push.arg(&keys.wake).arg(baton);
        let mut expire = command("PEXPIRE");
        expire.arg(&keys.wake).arg(lifetime_ms);
        commands.extend([push, expire]);
    }
    let mut set = command("SET");
    set.arg(&keys.lock)
        .arg(token)
        .arg("NX")
        .arg("GET")
        .arg("PX")
        .arg(lifetime_ms);
    let mut pttl = command("PTTL");
    pttl.arg(&keys.lock);
    commands.extend([set, pttl]);
    let skipped = commands.len() - 2;
    commands.extend(read_commands(topology, read.0, read.1));
    Op::new(commands, move |replies| {
        let mut replies = replies.into_iter().skip(skipped);
        let (Some(holder), Some(ttl)) = (replies.next(), replies.next()) else {
            return Err(BackendError::UnexpectedReply);
        };
        let lock_ttl = match ttl {
            Value::Int(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => Duration::ZERO,
        };
        Ok(LockAttempt {
            holder: bulk(holder)?,
            lock_ttl,
            read: parse_read(values_of(topology, replies.collect())?)?,
        })
    })
}

/// Releases the lock if this caller still holds it, and wakes the waiters with the token.
pub(crate) fn release(keys: &LockKeys, token: &[u8], lifetime: Duration) -> Op<()> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));
    let mut evalsha = command("EVALSHA");
    evalsha
        .arg(SCRIPT.get_hash())
        .arg(2)
        .arg(&keys.lock)
        .arg(&keys.wake)
        .arg(token)
        .arg(millis(Some(lifetime)));
    Op {
        commands: vec![evalsha],
        script: Some(&SCRIPT),
        blocks_for: None,
        parse: Box::new(|_| Ok(())),
    }
}

/// KEYS: lock, wake list. ARGV: token, wake list lifetime in ms.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
";

/// Blocks until a wake-up token arrives on the list, or `timeout` passes (`None`).
pub(crate) fn wait_for_wake(keys: &LockKeys, timeout: Duration) -> Op<Option<Vec<u8>>> {
    let mut blpop = command("BLPOP");
    blpop
        .arg(&keys.wake)
        .arg(format!("{:.3}", timeout.as_secs_f64().max(0.001)));
    Op {
        commands: vec![blpop],
        script: None,
        blocks_for: Some(timeout),
        parse: Box::new(|replies| match <[Value; 1]>::try_from(replies) {
            Ok([Value::Nil]) => Ok(None),
            Ok([Value::Array(pair)]) => match <[Value; 2]>::try_from(pair) {
                Ok([_, token]) => bulk(token),
                Err(_) => Err(BackendError::UnexpectedReply),
            },
            _ => Err(BackendError::UnexpectedReply),
        }),
    }
}
