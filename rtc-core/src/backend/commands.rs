//! The Redis commands behind each backend operation, and the parsing of their replies.
//!
//! Each operation is one [`Op`]: a pipeline sent in one round trip plus the function that reads its
//! reply. The sync and async connections run the same `Op`s, so the two APIs cannot drift apart.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Pipeline, Script, Value};

use super::{BackendError, ReadReply};
use crate::entry::{self, Observed};
use crate::keys::{LockKeys, TagKey};
use crate::version::Version;

type Parse<T> = Box<dyn FnOnce(Vec<Value>) -> Result<T, BackendError> + Send>;

/// One round trip: the commands, and how to read their replies.
pub(crate) struct Op<T> {
    pub pipeline: Pipeline,
    /// The script the pipeline calls by hash, if any; loaded and retried on `NOSCRIPT`.
    pub script: Option<&'static Script>,
    /// A blocking command may wait this long for its reply (beyond the socket timeout); it runs
    /// on a connection of its own.
    pub blocks_for: Option<Duration>,
    pub parse: Parse<T>,
}

impl<T> Op<T> {
    fn new(
        pipeline: Pipeline,
        parse: impl FnOnce(Vec<Value>) -> Result<T, BackendError> + Send + 'static,
    ) -> Self {
        Self {
            pipeline,
            script: None,
            blocks_for: None,
            parse: Box::new(parse),
        }
    }
}

/// The entry and every tag's version, in one `MGET`.
pub(crate) fn read(entry: &str, tags: &[&TagKey]) -> Op<ReadReply> {
    let mut pipeline = redis::pipe();
    pipeline.add_command(read_command(entry, tags));
    Op::new(pipeline, |replies| match <[Value; 1]>::try_from(replies) {
        Ok([reply]) => parse_read(reply),
        Err(_) => Err(BackendError::UnexpectedReply),
    })
}

fn read_command(entry: &str, tags: &[&TagKey]) -> redis::Cmd {
    let mut command = redis::cmd("MGET");
    command.arg(entry);
    for tag in tags {
        command.arg(tag.as_str());
    }
    command
}

fn parse_read(reply: Value) -> Result<ReadReply, BackendError> {
    let Value::Array(values) = reply else {
        return Err(BackendError::UnexpectedReply);
    };
    let mut values = values.into_iter();
    let entry = values.next().map(bulk).transpose()?.flatten();
    let versions = values.map(version).collect::<Result<_, _>>()?;
    Ok(ReadReply { entry, versions })
}

/// Every tag's version, in one `MGET`.
pub(crate) fn read_tags(tags: &[TagKey]) -> Op<Vec<Option<Version>>> {
    let mut pipeline = redis::pipe();
    let command = pipeline.cmd("MGET");
    for tag in tags {
        command.arg(tag.as_str());
    }
    Op::new(pipeline, |replies| {
        single_array(replies)?.into_iter().map(version).collect()
    })
}

/// `SET tag proposed NX GET`: creates a missing tag atomically and returns whichever version won.
pub(crate) fn create_tags(
    tags: &[(TagKey, Version)],
    lifetime: Option<Duration>,
) -> Op<Vec<Version>> {
    let mut pipeline = redis::pipe();
    for (tag, proposed) in tags {
        let command = pipeline
            .cmd("SET")
            .arg(tag.as_str())
            .arg(proposed.as_bytes())
            .arg("NX")
            .arg("GET");
        with_lifetime(command, lifetime);
    }
    let proposals: Vec<Version> = tags.iter().map(|(_, proposed)| *proposed).collect();
    Op::new(pipeline, move |replies| {
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
    let mut pipeline = redis::pipe();
    with_lifetime(pipeline.cmd("SET").arg(entry).arg(bytes), lifetime);
    Op::new(pipeline, |_| Ok(()))
}

/// Creates missing tags, stamps the entry with every tag's version and writes it, atomically
/// and in one round trip: the script touches only the keys it is given, all on one server.
pub(crate) fn write_stamped(
    entry: &str,
    observed: &Observed,
    payload: &[u8],
    lifetime: Option<Duration>,
    tag_lifetime: Option<Duration>,
) -> Result<Op<()>, BackendError> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(WRITE_STAMPED_LUA));
    let header = entry::header(observed).ok_or(BackendError::TooManyTags)?;
    let mut pipeline = redis::pipe();
    let command = pipeline
        .cmd("EVALSHA")
        .arg(SCRIPT.get_hash())
        .arg(1 + observed.canonical.len() + observed.implicit.len())
        .arg(entry);
    for (tag, _) in observed.all() {
        command.arg(tag.as_str());
    }
    command
        .arg(header)
        .arg(payload)
        .arg(millis(lifetime))
        .arg(millis(tag_lifetime));
    for _ in &observed.canonical {
        command.arg(&b""[..]).arg(Version::fresh().as_bytes());
    }
    for (tag, _) in &observed.implicit {
        command.arg(&tag.id()[..]).arg(Version::fresh().as_bytes());
    }
    Ok(Op {
        pipeline,
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

/// `DEL entry`: true when an entry was removed.
pub(crate) fn delete(entry: &str) -> Op<bool> {
    let mut pipeline = redis::pipe();
    pipeline.cmd("DEL").arg(entry);
    Op::new(pipeline, |replies| match replies.as_slice() {
        [Value::Int(removed)] => Ok(*removed > 0),
        _ => Err(BackendError::UnexpectedReply),
    })
}

/// Gives every tag a new version: entries stamped with the old one miss from now on.
pub(crate) fn bump(tags: &[(TagKey, Version)], lifetime: Option<Duration>) -> Op<()> {
    let mut pipeline = redis::pipe();
    for (tag, version) in tags {
        with_lifetime(
            pipeline
                .cmd("SET")
                .arg(tag.as_str())
                .arg(version.as_bytes()),
            lifetime,
        );
    }
    Op::new(pipeline, |_| Ok(()))
}

fn with_lifetime(command: &mut Pipeline, lifetime: Option<Duration>) {
    if let Some(lifetime) = lifetime {
        command.arg("PX").arg(millis(Some(lifetime)));
    }
}

/// Milliseconds, at least 1 for any non-zero lifetime; 0 stands for "no lifetime".
fn millis(lifetime: Option<Duration>) -> u64 {
    lifetime.map_or(0, |lifetime| {
        u64::try_from(lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    })
}

fn single_array(replies: Vec<Value>) -> Result<Vec<Value>, BackendError> {
    match <[Value; 1]>::try_from(replies) {
        Ok([Value::Array(values)]) => Ok(values),
        _ => Err(BackendError::UnexpectedReply),
    }
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
    keys: &LockKeys,
    token: &[u8],
    lifetime: Duration,
    baton: Option<&[u8]>,
    entry: &str,
    tags: &[&TagKey],
) -> Op<LockAttempt> {
    let mut pipeline = redis::pipe();
    if let Some(baton) = baton {
        pipeline.cmd("LPUSH").arg(&keys.wake).arg(baton).ignore();
        pipeline
            .cmd("PEXPIRE")
            .arg(&keys.wake)
            .arg(millis(Some(lifetime)))
            .ignore();
    }
    pipeline
        .cmd("SET")
        .arg(&keys.lock)
        .arg(token)
        .arg("NX")
        .arg("GET")
        .arg("PX")
        .arg(millis(Some(lifetime)));
    pipeline.cmd("PTTL").arg(&keys.lock);
    pipeline.add_command(read_command(entry, tags));
    Op::new(pipeline, |replies| {
        let [holder, ttl, entry]: [Value; 3] = replies
            .try_into()
            .map_err(|_| BackendError::UnexpectedReply)?;
        let lock_ttl = match ttl {
            Value::Int(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => Duration::ZERO,
        };
        Ok(LockAttempt {
            holder: bulk(holder)?,
            lock_ttl,
            read: parse_read(entry)?,
        })
    })
}

/// Releases the lock if this caller still holds it, and wakes the waiters with the token.
pub(crate) fn release(keys: &LockKeys, token: &[u8], lifetime: Duration) -> Op<()> {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));
    let mut pipeline = redis::pipe();
    pipeline
        .cmd("EVALSHA")
        .arg(SCRIPT.get_hash())
        .arg(2)
        .arg(&keys.lock)
        .arg(&keys.wake)
        .arg(token)
        .arg(millis(Some(lifetime)));
    Op {
        pipeline,
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
    let mut pipeline = redis::pipe();
    pipeline
        .cmd("BLPOP")
        .arg(&keys.wake)
        .arg(format!("{:.3}", timeout.as_secs_f64().max(0.001)));
    Op {
        pipeline,
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
