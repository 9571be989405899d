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

use std::time::Duration;

use redis::{RedisError, RedisResult, Value};

use super::super::commands;
use super::super::tracking::{client_error_owned, Known, KnownTags};
use super::{Commands, InBandFlow, Next};
use crate::engine::EntryWrite;
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

/// How `set` is sent at `now` (`clock::now_ms`): as one plain `SET` if `known` knows a version
/// for each of its tags and the entry lives long enough to stand where a tombstone was (see
/// the module's comment); `None`: as the stamped-write script.
pub(crate) fn plain_set(set: TrackedSet<'_>, known: &KnownTags, now: u64) -> Option<PlainSet> {
    if set
        .lifetime
        .is_some_and(|lifetime| lifetime < set.tombstone_lifetime)
    {
        return None;
    }
    let observed = &set.write.observed;
    let tags: Vec<TagKey> = observed.all().map(|(tag, _)| tag.clone()).collect();
    let before = known.versions(&tags, now)?;
    // A tag that does not exist is created by the script.
    if before.versions.iter().any(Option::is_none) {
        return None;
    }
    Some(PlainSet { tags, before })
}

/// A `set` of one entry on a data connection: one `SET` when the connection knows every tag's
/// version ([`plain_set`]), kept if they still hold once its reply is in. It ends with whether
/// the entry was written so; `false`: send the stamped-write script (nothing was sent, or the
/// `SET` may carry a version older than its tag's).
pub(in crate::backend::redis) struct TrackedSetFlow<'a> {
    set: TrackedSet<'a>,
    /// The plain `SET`'s tags and versions, once sent.
    sent: Option<(Vec<TagKey>, Known)>,
}

impl<'a> TrackedSetFlow<'a> {
    pub(in crate::backend::redis) fn new(set: TrackedSet<'a>) -> Self {
        Self { set, sent: None }
    }
}

impl InBandFlow for TrackedSetFlow<'_> {
    type Output = bool;

    fn next(
        &mut self,
        known: Option<&KnownTags>,
        replies: Option<Vec<Value>>,
    ) -> RedisResult<Next<bool>> {
        let now = crate::clock::now_ms();
        let Some(replies) = replies else {
            let plain = known.and_then(|known| plain_set(self.set, known, now));
            let Some((plain, bytes)) = plain.and_then(|plain| {
                let bytes = plain.bytes(self.set.write)?;
                Some((plain, bytes))
            }) else {
                return Ok(Next::Done(false));
            };
            let mut set = redis::cmd("SET");
            set.arg(self.set.write.entry).arg(bytes);
            let mut commands = Commands::new();
            commands.push(commands::with_lifetime(set, self.set.lifetime));
            self.sent = Some((plain.tags, plain.before));
            return Ok(Next::Send(commands));
        };
        let Some((tags, before)) = self.sent.take() else {
            return Err(client_error_owned(
                BackendError::Internal("a tracked set stepped out of order").to_string(),
            ));
        };
        if replies != [Value::Okay] {
            return Err(client_error_owned(
                BackendError::UnexpectedReply.to_string(),
            ));
        }
        Ok(Next::Done(
            known.is_some_and(|known| known.still(&tags, &before, now)),
        ))
    }

    fn failed(&mut self, _: Option<&KnownTags>, error: RedisError) -> RedisResult<Next<bool>> {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tracking::Informed;
    use super::*;
    use crate::engine::Ttl;
    use crate::format::{EntryKeys, KeySpace, Version};

    const HOUR: Duration = Duration::from_secs(3600);

    fn learned(known: &KnownTags, tags: &[TagKey], versions: &[Option<Version>]) {
        let learning = known.learn(tags, 0).expect("not known yet");
        let ttls = vec![Ttl::Forever; tags.len()];
        known.learned(&learning, versions, &ttls, 0);
    }

    /// An entry with a tag of its own besides the namespace's.
    fn keys() -> EntryKeys {
        EntryKeys::new(&KeySpace::new("set-tests"), "k", ["a"], Vec::new())
    }

    /// Its write, its tags, and a table whose connection tracks.
    fn entry(keys: &EntryKeys) -> (EntryWrite<'_>, Vec<TagKey>, KnownTags) {
        let write = EntryWrite::unstamped(keys, b"\x01v");
        let tags = write.observed.all().map(|(tag, _)| tag.clone()).collect();
        let known = KnownTags::default();
        known.trust();
        (write, tags, known)
    }

    fn step(
        flow: &mut TrackedSetFlow<'_>,
        known: &KnownTags,
        replies: Option<Vec<Value>>,
    ) -> Next<bool> {
        flow.next(Some(known), replies).expect("a step")
    }

    #[test]
    fn known_tags_make_one_set_of_a_lineage_of_its_own_kept_while_they_hold() {
        let keys = keys();
        let (write, tags, known) = entry(&keys);
        let set = TrackedSet {
            write: &write,
            lifetime: None,
            tombstone_lifetime: HOUR,
        };
        // Nothing known: the script.
        assert!(matches!(
            step(&mut TrackedSetFlow::new(set), &known, None),
            Next::Done(false)
        ));
        let versions = [Some(Version::from_u64(1)), Some(Version::from_u64(2))];
        learned(&known, &tags, &versions);

        let plain = plain_set(set, &known, 0).expect("every version known");
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

        let mut flow = TrackedSetFlow::new(set);
        let Next::Send(commands) = step(&mut flow, &known, None) else {
            panic!("one SET");
        };
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].args_iter().count(), 3, "SET key bytes, no PX");
        assert!(matches!(
            step(&mut flow, &known, Some(vec![Value::Okay])),
            Next::Done(true)
        ));

        // A change came ahead of the reply: the script writes it again.
        let mut flow = TrackedSetFlow::new(set);
        assert!(matches!(step(&mut flow, &known, None), Next::Send(_)));
        known.changed(&mut std::iter::once(tags[1].as_bytes()));
        assert!(matches!(
            step(&mut flow, &known, Some(vec![Value::Okay])),
            Next::Done(false)
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
        assert!(plain_set(set(None), &known, 0).is_none(), "a tag to create");
        known.changed_all();
        learned(
            &known,
            &tags,
            &[Some(Version::from_u64(1)), Some(Version::from_u64(2))],
        );
        assert!(plain_set(set(Some(HOUR - Duration::from_millis(1))), &known, 0).is_none());
        assert!(
            plain_set(set(Some(HOUR)), &known, 0).is_some(),
            "as long as a tombstone"
        );
        let mut flow = TrackedSetFlow::new(set(Some(HOUR)));
        let Next::Send(commands) = step(&mut flow, &known, None) else {
            panic!("one SET");
        };
        assert_eq!(commands[0].args_iter().count(), 5, "SET key bytes PX ms");
        // A reply that is not `OK` is an error, not a write.
        assert!(flow.next(Some(&known), Some(vec![Value::Nil])).is_err());
    }
}
