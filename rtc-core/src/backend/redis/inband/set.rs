//! A `set` of one entry on a data connection that knows its tags' versions: one plain `SET` of
//! the entry stamped with them, checked once its reply is in, as a state machine that does no
//! I/O.
//!
//! Every other write sends the stamped-write script (`scripts/write_stamped.lua`), which reads
//! the tags and the entry on the server. This one reads neither:
//! - *The tags.* Their versions are the ones this connection knows in-band. If a change to one of
//!   them came before the `SET` ran, its message arrives ahead of the `SET`'s reply
//!   (`tracking/known.rs`), so [`KnownTags::still`] fails once the reply is in, and the script
//!   writes the entry again with the versions of that moment. A change after the `SET` ran
//!   invalidates the entry, as it would have with the script.
//! - *The entry.* The script reads it to carry a delete's lineage on (`format::entry`): a
//!   computation that read before the delete must not land once the `set` replaced the
//!   tombstone. Here the entry gets a lineage of its own instead, a fresh token: such a
//!   computation's guard names the lineage it read (or none), which is not this one, so its
//!   write is refused. What the script also keeps, an entry living at least as long as the
//!   tombstone it replaced, holds by choice of the writes sent this way: only those that never
//!   expire, or live at least as long as a tombstone (`format::tombstone_lifetime`); a shorter
//!   one sends the script.
//!
//! A `set` whose tags the connection does not know, and an earlier `set` named, sends the script
//! led by the commands that learn them (`CLIENT CACHING YES`, their `MGET` and `PTTL`s), in the
//! same round trip, as a read does: the next `set` of those tags is one `SET`. The first `set` of
//! a tag learns nothing (a process that writes each tag once sends nothing more).

use std::time::Duration;

use redis::{RedisError, RedisResult, Value};

use super::super::commands::{self, Round, Topology};
use super::super::tracking::{client_error_owned, Known, KnownTags, Learning};
use super::read::{learn_commands, take_learned};
use super::{Commands, InBandFlow, Next};
use crate::engine::{EntryWrite, Operation};
use crate::error::BackendError;
use crate::format::{self, TagKey};

/// A `set` of one entry, as a data connection may send it.
#[derive(Clone, Copy)]
pub(crate) struct TrackedSet<'a> {
    pub write: &'a EntryWrite<'a>,
    /// How long the entry lives (`None`: it never expires).
    pub lifetime: Option<Duration>,
    /// How long a tombstone lives in this namespace (`format::tombstone_lifetime`).
    pub tombstone_lifetime: Duration,
}

/// A `set` to send as one plain `SET`: the versions it is stamped with.
#[derive(Clone, Debug)]
pub(crate) struct PlainSet {
    /// The write's tags, canonical first, in the order of `before`'s versions.
    pub tags: Vec<TagKey>,
    /// The versions known when it was planned, to check with [`KnownTags::still`] once its
    /// reply is in.
    pub before: Known,
}

impl PlainSet {
    /// The bytes of `write` (whose tags are this set's) stamped with the known versions, of a
    /// lineage of its own (a fresh token, format 4); `None` past the format's count of tags.
    pub(crate) fn bytes(&self, write: &EntryWrite<'_>) -> Option<Vec<u8>> {
        let mut stamped = write.observed.clone();
        let slots = stamped
            .canonical
            .iter_mut()
            .chain(stamped.implicit.iter_mut());
        for ((_, slot), version) in slots.zip(&self.before.versions) {
            *slot = *version;
        }
        // The simulator's `lineage` mutant: a plain `SET` of no lineage, as a `set` was before
        // it could skip the script.
        #[cfg(feature = "simulation")]
        if crate::mutants::active(crate::mutants::Mutant::Lineage) {
            return format::encode(&stamped, write.payload);
        }
        stamped.tombstone = Some(format::tombstone());
        format::encode(&stamped, write.payload)
    }
}

/// How a `set` is sent on a connection that tracks.
#[derive(Debug)]
pub(crate) enum SetPlan {
    /// One plain `SET`.
    Plain(PlainSet),
    /// The stamped-write script, led by the commands that learn these tags (placeholders
    /// taken), so that the next `set` of them is one `SET`.
    Learn(Learning),
    /// The stamped-write script alone.
    Script,
}

/// How `set` is sent at `now` (`clock::now_ms`): as one plain `SET` if `known` knows a version
/// for each of its tags and the entry lives long enough to stand where a tombstone was (see
/// the module's comment); else as the stamped-write script, learning the tags not known when
/// a later `set` of them could then be plain and an earlier `set` named them
/// ([`KnownTags::learn_for_set`]).
pub(crate) fn plan_set(set: TrackedSet<'_>, known: &KnownTags, now: u64) -> SetPlan {
    if set
        .lifetime
        .is_some_and(|lifetime| lifetime < set.tombstone_lifetime)
    {
        return SetPlan::Script;
    }
    let observed = &set.write.observed;
    let tags: Vec<TagKey> = observed.all().map(|(tag, _)| tag.clone()).collect();
    match known.versions(&tags, now) {
        // A tag that does not exist is created by the script (and its creation announced).
        Some(before) if before.versions.iter().any(Option::is_none) => SetPlan::Script,
        Some(before) => SetPlan::Plain(PlainSet { tags, before }),
        None => known
            .learn_for_set(&tags, now)
            .map_or(SetPlan::Script, SetPlan::Learn),
    }
}

/// How a [`TrackedSetFlow`] ended.
pub(in crate::backend::redis) enum SetSent {
    /// Written by one plain `SET`, whose versions still held when its reply came.
    Plain,
    /// The script's round was sent (after the commands that learn tags), and its replies.
    Script(Round, Vec<Value>),
    /// Nothing was sent for it, or the plain `SET` may carry a version older than its tag's:
    /// send the script's round.
    Unsent,
}

/// A `set` of one entry on a data connection: one `SET` when the connection knows every tag's
/// version ([`plan_set`]), kept if they still hold once its reply is in; else the script's
/// round for `operation` (built only then), led by the commands that learn the tags not known,
/// when some are to be learned.
pub(in crate::backend::redis) struct TrackedSetFlow<'a> {
    set: TrackedSet<'a>,
    operation: Operation<'a>,
    sent: Sent,
}

enum Sent {
    Nothing,
    /// The plain `SET`, with its tags and the versions it was stamped with.
    Plain(Vec<TagKey>, Known),
    /// The script's round after learning these tags, sent at `at` (`clock::now_ms`).
    Learning(Round, Learning, u64),
    Finished,
}

impl<'a> TrackedSetFlow<'a> {
    pub(in crate::backend::redis) fn new(set: TrackedSet<'a>, operation: Operation<'a>) -> Self {
        Self {
            set,
            operation,
            sent: Sent::Nothing,
        }
    }

    /// The first step: the plain `SET`, the script's round led by the learning commands, or
    /// nothing.
    fn start(&mut self, known: Option<&KnownTags>, now: u64) -> RedisResult<Next<SetSent>> {
        let plan = known.map_or(SetPlan::Script, |known| plan_set(self.set, known, now));
        match plan {
            SetPlan::Plain(plain) => {
                let Some(bytes) = plain.bytes(self.set.write) else {
                    return Ok(Next::Done(SetSent::Unsent));
                };
                let mut set = redis::cmd("SET");
                set.arg(self.set.write.entry).arg(bytes);
                let mut commands = Commands::new();
                commands.push(commands::with_lifetime(set, self.set.lifetime));
                self.sent = Sent::Plain(plain.tags, plain.before);
                Ok(Next::Send(commands))
            }
            SetPlan::Learn(learning) => {
                let round = match Round::of(Topology::Standalone, self.operation) {
                    Ok(round) => round,
                    Err(error) => {
                        if let Some(known) = known {
                            known.abandon(&learning);
                        }
                        return Err(client_error_owned(error.to_string()));
                    }
                };
                let mut commands = learn_commands(&learning);
                commands.extend(round.commands.iter().cloned());
                self.sent = Sent::Learning(round, learning, now);
                Ok(Next::Send(commands))
            }
            SetPlan::Script => Ok(Next::Done(SetSent::Unsent)),
        }
    }
}

impl InBandFlow for TrackedSetFlow<'_> {
    type Output = SetSent;
    const IDEMPOTENT: bool = false;

    fn next(
        &mut self,
        known: Option<&KnownTags>,
        replies: Option<Vec<Value>>,
    ) -> RedisResult<Next<SetSent>> {
        let now = crate::clock::now_ms();
        match (std::mem::replace(&mut self.sent, Sent::Finished), replies) {
            (Sent::Nothing, _) => self.start(known, now),
            (Sent::Plain(tags, before), Some(replies)) => {
                if replies != [Value::Okay] {
                    return Err(client_error_owned(
                        BackendError::UnexpectedReply.to_string(),
                    ));
                }
                let still = known.is_some_and(|known| known.still(&tags, &before, now));
                Ok(Next::Done(match still {
                    true => SetSent::Plain,
                    false => SetSent::Unsent,
                }))
            }
            (Sent::Learning(round, learning, at), Some(mut replies)) => {
                if let Some(known) = known {
                    take_learned(known, &mut replies, &learning, at)?;
                }
                Ok(Next::Done(SetSent::Script(round, replies)))
            }
            (_, _) => Err(client_error_owned(
                BackendError::Internal("a tracked set stepped out of order").to_string(),
            )),
        }
    }

    /// What the commands were to learn is dropped; the error is the `set`'s (a `NOSCRIPT` of
    /// the script: the caller loads it and sends the round again).
    fn failed(
        &mut self,
        known: Option<&KnownTags>,
        error: RedisError,
    ) -> RedisResult<Next<SetSent>> {
        if let (Sent::Learning(_, learning, _), Some(known)) =
            (std::mem::replace(&mut self.sent, Sent::Finished), known)
        {
            known.abandon(&learning);
        }
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tracking::Informed;
    use super::*;
    use crate::engine::{Operation, Ttl};
    use crate::format::{EntryKeys, KeySpace, Version};

    const HOUR: Duration = Duration::from_secs(3600);

    fn learned(known: &KnownTags, tags: &[TagKey], versions: &[Option<Version>]) {
        let learning = known.learn(tags, 0).expect("not known yet");
        // A missing tag's `PTTL` says it is missing.
        let ttls: Vec<Ttl> = versions
            .iter()
            .map(|version| match version {
                Some(_) => Ttl::Forever,
                None => Ttl::from_pttl(-2),
            })
            .collect();
        known.learned(&learning, versions, &ttls, 0);
    }

    /// An entry with a tag of its own besides the namespace's.
    fn keys() -> EntryKeys {
        EntryKeys::new(&KeySpace::new("set-tests"), &["k"], ["a"], Vec::new())
    }

    /// Its write, its tags, and a table whose connection tracks.
    fn entry(keys: &EntryKeys) -> (EntryWrite<'_>, Vec<TagKey>, KnownTags) {
        let write = EntryWrite::unstamped(keys, b"\x01v");
        let tags = write.observed.all().map(|(tag, _)| tag.clone()).collect();
        let known = KnownTags::default();
        known.trust();
        (write, tags, known)
    }

    /// A `set` of `write` that never expires.
    fn forever<'a>(write: &'a EntryWrite<'a>) -> TrackedSet<'a> {
        TrackedSet {
            write,
            lifetime: None,
            tombstone_lifetime: HOUR,
        }
    }

    /// The `set` of `write`, as the stamped-write script's operation.
    fn script<'a>(write: &'a EntryWrite<'a>, lifetime: Option<Duration>) -> Operation<'a> {
        Operation::WriteStamped {
            writes: std::slice::from_ref(write),
            lifetime,
            tag_lifetime: None,
        }
    }

    fn step(
        flow: &mut TrackedSetFlow<'_>,
        known: &KnownTags,
        replies: Option<Vec<Value>>,
    ) -> Next<SetSent> {
        flow.next(Some(known), replies).expect("a step")
    }

    #[test]
    fn a_set_learns_its_tags_with_the_script_then_is_one_set_of_a_lineage_of_its_own() {
        let keys = keys();
        let (write, tags, known) = entry(&keys);
        let set = forever(&write);
        let round = script(&write, None);
        // Nothing known, and no `set` of these tags before: the script alone.
        let mut flow = TrackedSetFlow::new(set, round);
        assert!(matches!(
            step(&mut flow, &known, None),
            Next::Done(SetSent::Unsent)
        ));
        // The next: the script, led by the commands that learn both tags.
        let mut flow = TrackedSetFlow::new(set, round);
        let Next::Send(commands) = step(&mut flow, &known, None) else {
            panic!("the script, learning");
        };
        assert_eq!(commands.len(), 5, "CACHING, MGET, two PTTLs, EVALSHA");
        let versions = [Some(Version::from_u64(1)), Some(Version::from_u64(2))];
        let version = |v: &Option<Version>| Value::BulkString(v.unwrap().as_bytes().to_vec());
        let replies = vec![
            Value::Okay,
            Value::Array(versions.iter().map(version).collect()),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(1),
        ];
        let Next::Done(SetSent::Script(_, script)) = step(&mut flow, &known, Some(replies)) else {
            panic!("the script's replies");
        };
        assert_eq!(script, vec![Value::Int(1)]);

        let SetPlan::Plain(plain) = plan_set(set, &known, 0) else {
            panic!("every version known");
        };
        assert_eq!(plain.before.versions, versions);
        let bytes = plain.bytes(&write).expect("two tags");
        let mut read = keys.observe(&versions);
        read.tombstone = format::lineage(&bytes);
        assert!(read.tombstone.is_some(), "a lineage of its own");
        assert!(matches!(
            format::check(&bytes, &read),
            format::Freshness::Fresh(b"\x01v")
        ));
        // Another set's lineage is another one.
        let other = plain.bytes(&write).expect("two tags");
        assert_ne!(format::lineage(&other), read.tombstone);

        let mut flow = TrackedSetFlow::new(set, round);
        let Next::Send(commands) = step(&mut flow, &known, None) else {
            panic!("one SET");
        };
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].args_iter().count(), 3, "SET key bytes, no PX");
        assert!(matches!(
            step(&mut flow, &known, Some(vec![Value::Okay])),
            Next::Done(SetSent::Plain)
        ));

        // A change came ahead of the reply: the script writes it again.
        let mut flow = TrackedSetFlow::new(set, round);
        assert!(matches!(step(&mut flow, &known, None), Next::Send(_)));
        known.changed(&mut std::iter::once(tags[1].as_bytes()));
        assert!(matches!(
            step(&mut flow, &known, Some(vec![Value::Okay])),
            Next::Done(SetSent::Unsent)
        ));
    }

    #[test]
    fn a_write_shorter_lived_than_a_tombstone_or_with_a_tag_missing_sends_the_script() {
        let keys = keys();
        let (write, tags, known) = entry(&keys);
        learned(&known, &tags, &[Some(Version::from_u64(1)), None]);
        let set = |lifetime| TrackedSet {
            write: &write,
            lifetime,
            tombstone_lifetime: HOUR,
        };
        let plan = |lifetime| plan_set(set(lifetime), &known, 0);
        assert!(matches!(plan(None), SetPlan::Script), "a tag to create");
        known.changed_all();
        let short = Some(HOUR - Duration::from_millis(1));
        assert!(
            matches!(plan(short), SetPlan::Script),
            "nothing to learn for"
        );
        learned(
            &known,
            &tags,
            &[Some(Version::from_u64(1)), Some(Version::from_u64(2))],
        );
        assert!(matches!(plan(short), SetPlan::Script));
        assert!(
            matches!(plan(Some(HOUR)), SetPlan::Plain(_)),
            "as long as a tombstone"
        );
        let round = script(&write, Some(HOUR));
        let mut flow = TrackedSetFlow::new(set(Some(HOUR)), round);
        let Next::Send(commands) = step(&mut flow, &known, None) else {
            panic!("one SET");
        };
        assert_eq!(commands[0].args_iter().count(), 5, "SET key bytes PX ms");
        // A reply that is not `OK` is an error, not a write.
        assert!(flow.next(Some(&known), Some(vec![Value::Nil])).is_err());
    }

    #[test]
    fn a_failed_learning_script_forgets_what_it_was_to_learn() {
        let keys = keys();
        let (write, tags, known) = entry(&keys);
        let set = forever(&write);
        let round = script(&write, None);
        assert!(known.learn_for_set(&tags, 0).is_none(), "a first sighting");
        let mut flow = TrackedSetFlow::new(set, round);
        assert!(matches!(step(&mut flow, &known, None), Next::Send(_)));
        let noscript = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::NoScript),
            "NOSCRIPT",
        ));
        assert!(flow.failed(Some(&known), noscript).is_err());
        // The placeholders went: the next set learns again.
        assert!(known.learn(&tags, 0).is_some());
    }
}
