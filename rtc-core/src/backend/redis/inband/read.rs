//! A read of one entry (or of several, for `get_many`) on a data connection, as a state machine
//! that does no I/O, and the commands and replies it is made of.

use redis::{RedisError, RedisResult, Value};

use super::super::commands::{self, Round};
use super::super::tracking::{client_error_owned, Known, KnownTags, Learning, Plan};
use super::{Commands, InBandFlow, Next};
use crate::engine::{Expiry, ManyReply, ReadReply, Reply, Ttl};
use crate::error::BackendError;
use crate::format::{TagKey, Version};

/// What a read sent on a tracked connection got back.
pub(in crate::backend::redis) enum Answered {
    /// The one-`GET` round's replies, and the versions known before and after it.
    Known(Vec<Value>, Known),
    /// The full round, and its replies (what learned versions came first are already taken).
    Read(Round, Vec<Value>),
}

/// A read of entries and their tags, as the tracked connection sends it.
pub(in crate::backend::redis) struct TrackedRead<'a> {
    pub entries: Entries<'a>,
    pub tags: &'a [TagKey],
}

/// What a tracked read reads besides its tags.
#[derive(Clone, Copy, Debug)]
pub(in crate::backend::redis) enum Entries<'a> {
    /// One entry (`get`, a decorated call), with its time to live if the caller asked for it
    /// (`ttl`), and how long every key read has to live if it asked that (`expiry`).
    One {
        entry: &'a str,
        ttl: bool,
        expiry: bool,
    },
    /// Several (`get_many`): their bytes.
    Many(&'a [&'a str]),
}

impl TrackedRead<'_> {
    /// The read in full: the entries and every tag (on one server).
    pub(in crate::backend::redis) fn round(&self) -> Round {
        let topology = commands::Topology::Standalone;
        match self.entries {
            Entries::One { entry, ttl, expiry } => {
                Round::read(topology, entry, self.tags, ttl, expiry)
            }
            Entries::Many(entries) => Round::read_many(topology, entries, self.tags),
        }
    }

    /// The round of a read whose tags are known: `GET` of the entry (and its `PTTL` when
    /// asked for), or one `MGET` of the entries.
    pub(in crate::backend::redis) fn hit_commands(&self) -> Commands {
        match self.entries {
            Entries::One { entry, ttl, expiry } => {
                let mut commands = Commands::new();
                commands.push(commands::on_key("GET", entry));
                if ttl || expiry {
                    commands.push(commands::pttl(entry));
                }
                commands
            }
            Entries::Many(entries) => Commands::from_vec(commands::get_all(
                commands::Topology::Standalone,
                entries.iter().copied(),
            )),
        }
    }

    /// The reply of [`TrackedRead::hit_commands`], with the versions known around it.
    pub(in crate::backend::redis) fn hit_reply(
        &self,
        replies: Vec<Value>,
        known: Known,
    ) -> Result<Reply, BackendError> {
        let (ttl, expiry) = match self.entries {
            Entries::One { ttl, expiry, .. } => (ttl, expiry),
            Entries::Many(entries) => {
                let many =
                    commands::many_reply(commands::Topology::Standalone, replies, entries.len())?;
                if !many.versions.is_empty() {
                    return Err(BackendError::UnexpectedReply);
                }
                return Ok(Reply::Many(ManyReply {
                    versions: known.versions,
                    ..many
                }));
            }
        };
        let mut replies = replies;
        let left = match ttl || expiry {
            true => commands::ttls_at_end(&mut replies, 1)?
                .pop()
                .unwrap_or_default(),
            false => Ttl::Unasked,
        };
        let [entry] = <[Value; 1]>::try_from(replies).map_err(|_| BackendError::UnexpectedReply)?;
        let expiry = match (expiry, known.until) {
            (false, _) => Expiry::Unknown,
            (true, u64::MAX) => left.expiry(),
            (true, until) => {
                let until = until.saturating_sub(crate::clock::now_ms());
                left.expiry()
                    .min(Expiry::After(std::time::Duration::from_millis(until)))
            }
        };
        Ok(Reply::Read(ReadReply {
            entry: commands::bulk(entry)?,
            versions: known.versions,
            expiry,
            ttl: if ttl { left } else { Ttl::Unasked },
        }))
    }
}

/// A read of one entry (or of a `get_many`'s entries) on a data connection, as a state machine
/// that does no I/O: one `GET` (one `MGET` of the entries) when the connection knows every
/// tag's version, else the whole read, learning the tags it does not know on the way. The
/// async and blocking drivers in `server.rs` send what it asks.
pub(in crate::backend::redis) struct TrackedReadFlow<'a> {
    read: &'a TrackedRead<'a>,
    sent: Sent,
}

enum Sent {
    Nothing,
    /// The one `GET` (or `MGET` of the entries), sent with these versions known.
    Hit(Known),
    /// The whole read, after learning these tags (when some) from a request sent at `at`.
    Full {
        round: Round,
        learning: Option<Learning>,
        at: u64,
    },
    Finished,
}

impl<'a> TrackedReadFlow<'a> {
    pub(in crate::backend::redis) fn new(read: &'a TrackedRead<'a>) -> Self {
        Self {
            read,
            sent: Sent::Nothing,
        }
    }

    fn full(&mut self, learning: Option<Learning>, now: u64) -> Next<Answered> {
        let mut round = self.read.round();
        let mut commands: Commands = learning.as_ref().map(learn_commands).unwrap_or_default();
        // The round is kept for how its replies read, not for its commands.
        commands.extend(std::mem::take(&mut round.commands));
        self.sent = Sent::Full {
            round,
            learning,
            at: now,
        };
        Next::Send(commands)
    }
}

impl InBandFlow for TrackedReadFlow<'_> {
    type Output = Answered;
    const IDEMPOTENT: bool = true;

    fn next(
        &mut self,
        known: Option<&KnownTags>,
        replies: Option<Vec<Value>>,
    ) -> RedisResult<Next<Answered>> {
        let tags = self.read.tags;
        // Versions are trusted until the upper bound of the time reaches theirs; what is sent
        // is dated by the lower one (a tag's time to live then counts from no later than
        // its read).
        let now = crate::clock::now_ms_bounds();
        match (std::mem::replace(&mut self.sent, Sent::Finished), replies) {
            (Sent::Nothing, _) => Ok(match known.map(|known| known.plan(tags, now.upper)) {
                Some(Plan::OneGet(before)) => {
                    self.sent = Sent::Hit(before);
                    Next::Send(self.read.hit_commands())
                }
                Some(Plan::Full(learning)) => self.full(learning, now.lower),
                None => self.full(None, now.lower),
            }),
            (Sent::Hit(before), Some(replies)) => {
                let known = known.filter(|known| !known.still(tags, &before, now.upper));
                Ok(match known {
                    None => Next::Done(Answered::Known(replies, before)),
                    // A tag changed, or its time ran out, before the reply came: the `GET` may
                    // have run after it. Read it all again.
                    Some(known) => self.full(known.learn(tags, now.upper), now.lower),
                })
            }
            (
                Sent::Full {
                    round,
                    learning,
                    at,
                },
                Some(mut replies),
            ) => {
                if let (Some(known), Some(learning)) = (known, &learning) {
                    take_learned(known, &mut replies, learning, at)?;
                }
                Ok(Next::Done(Answered::Read(round, replies)))
            }
            (_, _) => Err(client_error_owned(
                BackendError::Internal("a tracked read stepped out of order").to_string(),
            )),
        }
    }

    /// A `GET` refused because the key is not a string (which `MGET` reads as no entry) is
    /// sent again as the whole read; otherwise what the commands were to learn is dropped and
    /// the read fails.
    fn failed(
        &mut self,
        known: Option<&KnownTags>,
        error: RedisError,
    ) -> RedisResult<Next<Answered>> {
        match std::mem::replace(&mut self.sent, Sent::Finished) {
            Sent::Hit(_) if error.code() == Some("WRONGTYPE") => {
                let now = crate::clock::now_ms();
                let learning = known.and_then(|known| known.learn(self.read.tags, now));
                Ok(self.full(learning, now))
            }
            Sent::Full {
                learning: Some(learning),
                ..
            } => {
                if let Some(known) = known {
                    known.abandon(&learning);
                }
                Err(error)
            }
            _ => Err(error),
        }
    }
}

/// The commands that learn `learning`'s tags, sent ahead of a round: `CLIENT CACHING YES` (so
/// that the next command's keys are tracked), their `MGET`, and a `PTTL` of each.
pub(in crate::backend::redis) fn learn_commands(learning: &Learning) -> Commands {
    let tags = learning.tags();
    let mut caching = redis::cmd("CLIENT");
    caching.arg("CACHING").arg("YES");
    let mut commands = Commands::new();
    commands.push(caching);
    commands.extend(commands::get_all(
        commands::Topology::Standalone,
        tags.iter().map(TagKey::as_str),
    ));
    commands.extend(tags.iter().map(|tag| commands::pttl(tag.as_str())));
    commands
}

/// Takes the replies of [`learn_commands`] off the front of a round's: each tag's version and
/// time to live.
fn learned(
    replies: &mut Vec<Value>,
    learning: &Learning,
) -> Result<(Vec<Option<Version>>, Vec<Ttl>), BackendError> {
    let count = learning.tags().len();
    if replies.len() < 2 + count {
        return Err(BackendError::UnexpectedReply);
    }
    let rest = replies.split_off(2 + count);
    let mut learned = std::mem::replace(replies, rest);
    let ttls = commands::ttls_at_end(&mut learned, count)?;
    let versions = match learned.pop() {
        Some(Value::Array(values)) if values.len() == count => values
            .into_iter()
            .map(commands::version)
            .collect::<Result<_, _>>()?,
        _ => return Err(BackendError::UnexpectedReply),
    };
    Ok((versions, ttls))
}

/// Takes the replies of [`learn_commands`] off the front of `replies` and gives `known` what
/// they read (sent at `at`, `clock::now_ms`); replies that do not read so drop what was to be
/// learned, and are an error.
pub(in crate::backend::redis) fn take_learned(
    known: &KnownTags,
    replies: &mut Vec<Value>,
    learning: &Learning,
    at: u64,
) -> RedisResult<()> {
    match learned(replies, learning) {
        Ok((versions, ttls)) => {
            known.learned(learning, &versions, &ttls, at);
            Ok(())
        }
        Err(error) => {
            known.abandon(learning);
            Err(client_error_owned(error.to_string()))
        }
    }
}

/// The reply a tracked read's answer makes.
pub(in crate::backend::redis) fn reply(
    read: &TrackedRead<'_>,
    answered: Answered,
) -> Result<Reply, BackendError> {
    match answered {
        Answered::Known(replies, known) => read.hit_reply(replies, known),
        Answered::Read(round, replies) => round.reply(replies),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tracking::Informed;
    use super::*;
    use crate::format::KeySpace;

    #[test]
    fn learned_replies_come_off_the_front() {
        let space = KeySpace::new("inband-tests");
        let tags = vec![space.user_tag("a"), space.user_tag("b")];
        let known = KnownTags::default();
        known.trust();
        let learning = known.learn(&tags, 0).expect("both unknown");
        assert_eq!(learn_commands(&learning).len(), 4);
        let v = Version::from_u64(9);
        let mut replies = vec![
            Value::Okay,
            Value::Array(vec![Value::BulkString(v.as_bytes().to_vec()), Value::Nil]),
            Value::Int(-1),
            Value::Int(-2),
            Value::Int(42),
        ];
        let (versions, ttls) = learned(&mut replies, &learning).expect("well formed");
        assert_eq!(versions, vec![Some(v), None]);
        assert_eq!(ttls, vec![Ttl::Forever, Ttl::from_pttl(-2)]);
        assert_eq!(replies, vec![Value::Int(42)]);
    }
}
