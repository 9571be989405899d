//! The Redis commands behind each backend operation, and the parsing of their replies.
//!
//! Each operation is one [`Op`]: a pipeline sent in one round trip plus the function that reads its
//! reply. The sync and async connections run the same `Op`s, so the two APIs cannot drift apart.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Pipeline, Script, Value};

use super::{BackendError, ReadReply};
use crate::entry::{self, Observed};
use crate::keys::TagKey;
use crate::version::Version;

type Parse<T> = Box<dyn FnOnce(Vec<Value>) -> Result<T, BackendError> + Send>;

/// One round trip: the commands, and how to read their replies.
pub(crate) struct Op<T> {
    pub pipeline: Pipeline,
    /// The script the pipeline calls by hash, if any; loaded and retried on `NOSCRIPT`.
    pub script: Option<&'static Script>,
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
            parse: Box::new(parse),
        }
    }
}

/// The entry and every tag's version, in one `MGET`.
pub(crate) fn read(entry: &str, tags: &[&TagKey]) -> Op<ReadReply> {
    let mut pipeline = redis::pipe();
    let command = pipeline.cmd("MGET").arg(entry);
    for tag in tags {
        command.arg(tag.as_str());
    }
    Op::new(pipeline, |replies| {
        let mut values = single_array(replies)?.into_iter();
        let entry = values.next().map(bulk).transpose()?.flatten();
        let versions = values.map(version).collect::<Result<_, _>>()?;
        Ok(ReadReply { entry, versions })
    })
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
