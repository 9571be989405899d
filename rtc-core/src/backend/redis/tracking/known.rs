//! Tag versions known in-band: what one tracked data connection has read of its tags, kept
//! while Redis has not announced a change to them on that same connection.
//!
//! The connection turned `CLIENT TRACKING ON OPTIN` on before anything was read on it, and each
//! read whose tags are to be known is sent right after `CLIENT CACHING YES`: Redis then pushes
//! an invalidation on this connection when any of those keys changes, ahead of the reply of any
//! read sent after the change returned to its writer (`NEAR-CACHE.md` §8). So a version still
//! known when the reply of a later read arrives was the tag's version when that read ran, and a
//! hit may be one `GET` of its entry, checked against these versions.
//!
//! The table does no I/O and reads no clock (the times are given): the data connection's driver
//! (`backend::redis::inband`) and the simulator step the same code. What it guards against:
//! - a version read before tracking was on: the table is closed until the `CLIENT TRACKING`
//!   reply, and belongs to one connection (a reconnect makes a new one);
//! - a change while a read that learns a version is in flight: the tag holds a placeholder from
//!   before the read is sent, a change removes it, and a fill whose placeholder is gone is
//!   dropped (`NEAR-CACHE.md` §1);
//! - a lost connection (closed for good) and a flushed database (everything forgotten);
//! - a tag that expires without a message (Redis announces an expired key only once it deletes
//!   it): a version is used only until the tag's time to live, as read with it, has passed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::session::Informed;
use crate::engine::Ttl;
use crate::format::{TagKey, Version};

/// Past this many tags, learning one more forgets them all (the server forgets them too, as its
/// tracking table evicts, with a message).
const MAX_TAGS: usize = 1 << 16;

/// The versions one tracked connection knows.
#[derive(Debug, Default)]
pub(crate) struct KnownTags {
    state: Mutex<State>,
    /// How many times a message changed what the table knows (a change, a flush, the
    /// connection lost), bumped under the lock: a read planned at the same count, with no
    /// message since, still holds without looking its tags up again.
    messages: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Tracking was acknowledged and the connection has not been lost since.
    open: bool,
    /// The last placeholder's number.
    tickets: u64,
    slots: HashMap<Box<[u8]>, Slot, foldhash::fast::RandomState>,
    /// Tags a `set` named while they were not known ([`KnownTags::learn_for_set`]): the next
    /// `set` that names them learns them.
    sighted: HashSet<Box<[u8]>, foldhash::fast::RandomState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// A read that learns this tag is in flight: only the placeholder numbered so may fill it.
    Learning(u64),
    /// The tag's version (`None`: there is no such tag, and Redis announces its creation as
    /// it does any change of a key read with tracking on), good until `until`
    /// (`clock::now_ms`; `u64::MAX`: never expires).
    Known {
        version: Option<Version>,
        until: u64,
    },
}

/// Tags whose versions a read is about to learn (placeholders taken before it is sent).
#[derive(Debug)]
pub(crate) struct Learning {
    ticket: u64,
    tags: Vec<TagKey>,
}

impl Learning {
    /// The tags to read, in the order [`KnownTags::learned`] expects their replies.
    pub(crate) fn tags(&self) -> &[TagKey] {
        &self.tags
    }
}

/// How a read of one entry is sent on a tracked connection.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Every tag's version is known: one `GET` of the entry, then [`KnownTags::still`].
    OneGet(Known),
    /// The entry and its tags, after learning these (`None`: nothing to learn, or the
    /// connection does not track), then [`KnownTags::learned`].
    Full(Option<Learning>),
}

/// The versions of a read's tags, all known, and until when they all are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Known {
    pub versions: Vec<Option<Version>>,
    /// The first moment (`clock::now_ms`) one of them may have expired; `u64::MAX`: none expires.
    pub until: u64,
    /// How many messages the table had applied when they were read.
    messages: u64,
}

impl KnownTags {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How to read an entry whose tags are `tags`, at `now`: [`Plan::OneGet`] when every
    /// version is known, else in full, learning the tags not known.
    pub(crate) fn plan(&self, tags: &[TagKey], now: u64) -> Plan {
        match self.versions(tags, now) {
            Some(known) => Plan::OneGet(known),
            None => Plan::Full(self.learn(tags, now)),
        }
    }

    /// Whether `before` still holds at `now`, once the reply of the `GET` sent after it came:
    /// no message for those tags arrived ahead of it, so none of them changed before it ran.
    /// Otherwise the read is to be sent again in full.
    pub(crate) fn still(&self, tags: &[TagKey], before: &Known, now: u64) -> bool {
        if now >= before.until {
            return false;
        }
        // No message at all since the versions were read: none for these tags either. Every
        // message the server sent ahead of the reply was applied before the reply was handed
        // over (and counted under the lock), so this load sees it.
        if self.messages.load(Ordering::Acquire) == before.messages {
            return true;
        }
        let state = self.state();
        state.open
            && tags.len() == before.versions.len()
            && tags.iter().zip(&before.versions).all(|(tag, before)| {
                matches!(state.slots.get(tag.as_bytes()),
                    Some(Slot::Known { version, until }) if now < *until && *version == *before)
            })
    }

    /// Every version of `tags`, when each is known at `now`; `None` when any is not.
    pub(crate) fn versions(&self, tags: &[TagKey], now: u64) -> Option<Known> {
        let state = self.state();
        if !state.open {
            return None;
        }
        let mut until = u64::MAX;
        let versions = tags
            .iter()
            .map(|tag| match state.slots.get(tag.as_bytes())? {
                Slot::Known {
                    version,
                    until: known_until,
                } if now < *known_until => {
                    until = until.min(*known_until);
                    Some(*version)
                }
                _ => None,
            })
            .collect::<Option<_>>()?;
        Some(Known {
            versions,
            until,
            messages: self.messages.load(Ordering::Acquire),
        })
    }

    /// Placeholders for the tags of `tags` not known at `now`, before a read that learns them is
    /// sent; `None` when all are known, or the connection does not track.
    pub(crate) fn learn(&self, tags: &[TagKey], now: u64) -> Option<Learning> {
        let mut state = self.state();
        let unknown = state.unknown(tags, now)?;
        Some(state.placeholders(unknown))
    }

    /// [`KnownTags::learn`] for a `set`, which sends the stamped-write script either way: only
    /// tags a `set` already named while they were unknown are learned, so that a process
    /// writing tags once each (and creating them: the creation of a tag learned as missing is
    /// announced to this very connection, which forgets it at once) sends nothing more. The
    /// first `set` of a tag marks it; the next learns it, and the one after is a plain `SET`.
    pub(crate) fn learn_for_set(&self, tags: &[TagKey], now: u64) -> Option<Learning> {
        let mut state = self.state();
        let unknown = state.unknown(tags, now)?;
        let first = unknown
            .iter()
            .any(|tag| !state.sighted.contains(tag.as_bytes()));
        if first {
            if state.sighted.len() + unknown.len() > MAX_TAGS {
                state.sighted.clear();
            }
            for tag in &unknown {
                state.sighted.insert(Box::from(tag.as_bytes()));
            }
            return None;
        }
        for tag in &unknown {
            state.sighted.remove(tag.as_bytes());
        }
        Some(state.placeholders(unknown))
    }

    /// What the read of `learning` found, sent at `sent` (`clock::now_ms`): each tag's version
    /// (`None`: no such tag) and time to live. A tag whose placeholder a change (or a later
    /// read) took is left alone. One found missing by both reads is known as missing: without
    /// that, every read of entries whose tags were never written (`get_many` of keys not
    /// cached yet) would learn them again. One that has a version but no time left, or whose
    /// two reads disagree (it was written between them: its message follows), is forgotten.
    pub(crate) fn learned(
        &self,
        learning: &Learning,
        versions: &[Option<Version>],
        ttls: &[Ttl],
        sent: u64,
    ) {
        let mut state = self.state();
        for (index, tag) in learning.tags.iter().enumerate() {
            let key = tag.as_bytes();
            let placeholder = state.slots.get(key) == Some(&Slot::Learning(learning.ticket));
            // The simulator's `inband` mutant: a fill whose placeholder a change took is kept.
            #[cfg(feature = "simulation")]
            let placeholder = placeholder || crate::mutants::active(crate::mutants::Mutant::Inband);
            if !placeholder {
                continue;
            }
            let found = versions.get(index).copied().flatten();
            let until = match ttls.get(index) {
                Some(Ttl::Forever) => Some(u64::MAX),
                Some(Ttl::Left(left)) if !left.is_zero() => {
                    let left = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                    Some(sent.saturating_add(left))
                }
                _ => None,
            };
            let known = match (found, until) {
                (Some(version), Some(until)) => Some((Some(version), until)),
                (None, None) => Some((None, u64::MAX)),
                _ => None,
            };
            match known {
                Some((version, until)) => {
                    state
                        .slots
                        .insert(Box::from(key), Slot::Known { version, until });
                }
                None => {
                    state.slots.remove(key);
                }
            }
        }
    }

    /// Counts a message that changes the table (the caller holds the lock).
    fn count_message(&self) {
        self.messages.fetch_add(1, Ordering::Release);
    }

    /// The read of `learning` failed: its placeholders go.
    pub(crate) fn abandon(&self, learning: &Learning) {
        let mut state = self.state();
        for tag in &learning.tags {
            let key = tag.as_bytes();
            if state.slots.get(key) == Some(&Slot::Learning(learning.ticket)) {
                state.slots.remove(key);
            }
        }
    }
}

impl State {
    /// The tags of `tags` not known at `now` (`None`: all are, or the connection does not
    /// track).
    fn unknown(&self, tags: &[TagKey], now: u64) -> Option<Vec<TagKey>> {
        if !self.open {
            return None;
        }
        let unknown: Vec<TagKey> = tags
            .iter()
            .filter(|tag| {
                !matches!(self.slots.get(tag.as_bytes()),
                    Some(Slot::Known { until, .. }) if now < *until)
            })
            .cloned()
            .collect();
        (!unknown.is_empty()).then_some(unknown)
    }

    /// Placeholders for `unknown`, before a read that learns them is sent.
    fn placeholders(&mut self, unknown: Vec<TagKey>) -> Learning {
        if self.slots.len() + unknown.len() > MAX_TAGS {
            self.slots.clear();
        }
        self.tickets += 1;
        let ticket = self.tickets;
        for tag in &unknown {
            self.slots
                .insert(Box::from(tag.as_bytes()), Slot::Learning(ticket));
        }
        Learning {
            ticket,
            tags: unknown,
        }
    }
}

/// A tracked connection's messages.
impl Informed for KnownTags {
    fn trust(&self) {
        self.state().open = true;
    }

    /// The connection is lost: nothing it learned is trusted again (a new connection brings a
    /// new table).
    fn distrust(&self) {
        let mut state = self.state();
        self.count_message();
        state.open = false;
        state.slots.clear();
    }

    fn changed(&self, keys: &mut dyn Iterator<Item = &[u8]>) {
        let mut state = self.state();
        self.count_message();
        for key in keys {
            state.slots.remove(key);
        }
    }

    fn changed_all(&self) {
        let mut state = self.state();
        self.count_message();
        state.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::format::KeySpace;

    fn tags(names: &[&str]) -> Vec<TagKey> {
        let space = KeySpace::new("known-tests");
        names.iter().map(|name| space.user_tag(name)).collect()
    }

    fn open() -> KnownTags {
        let known = KnownTags::default();
        known.trust();
        known
    }

    fn keys(tags: &[TagKey]) -> Vec<&[u8]> {
        tags.iter().map(|tag| tag.as_bytes()).collect()
    }

    const V1: Option<Version> = Some(Version::from_u64(1));

    #[test]
    fn nothing_is_known_before_tracking_is_acknowledged() {
        let known = KnownTags::default();
        let tags = tags(&["a"]);
        assert!(known.learn(&tags, 0).is_none());
        assert!(known.versions(&tags, 0).is_none());
    }

    #[test]
    fn a_learned_version_is_known_until_its_tag_expires() {
        let known = open();
        let tags = tags(&["a", "b"]);
        let learning = known.learn(&tags, 0).expect("both are unknown");
        assert_eq!(learning.tags(), &tags[..]);
        known.learned(
            &learning,
            &[V1, V1],
            &[Ttl::Forever, Ttl::Left(Duration::from_millis(500))],
            100,
        );
        let found = known.versions(&tags, 599).expect("both are known");
        assert_eq!(found.versions, vec![V1, V1]);
        assert_eq!(found.until, 600);
        assert!(known.versions(&tags, 600).is_none(), "b expired at 600");
        assert_eq!(known.learn(&tags, 600).expect("b again").tags(), &tags[1..]);
    }

    #[test]
    fn a_change_while_the_read_is_in_flight_drops_its_fill() {
        let known = open();
        let tags = tags(&["a"]);
        let learning = known.learn(&tags, 0).expect("unknown");
        known.changed(&mut keys(&tags).into_iter());
        known.learned(&learning, &[V1], &[Ttl::Forever], 0);
        assert!(known.versions(&tags, 0).is_none());
    }

    #[test]
    fn a_later_placeholder_wins_over_an_earlier_one() {
        let known = open();
        let tags = tags(&["a"]);
        let first = known.learn(&tags, 0).expect("unknown");
        known.changed(&mut keys(&tags).into_iter());
        let second = known.learn(&tags, 0).expect("unknown again");
        known.learned(&first, &[V1], &[Ttl::Forever], 0);
        assert!(
            known.versions(&tags, 0).is_none(),
            "the first read is older"
        );
        let v2 = Some(Version::from_u64(2));
        known.learned(&second, &[v2], &[Ttl::Forever], 0);
        assert_eq!(known.versions(&tags, 0).map(|k| k.versions), Some(vec![v2]));
    }

    #[test]
    fn a_missing_tag_is_known_missing_until_created_and_a_flush_and_a_lost_connection_forget() {
        let known = open();
        let tags = tags(&["a", "b"]);
        let learning = known.learn(&tags, 0).expect("unknown");
        known.learned(
            &learning,
            &[V1, None],
            &[Ttl::Forever, Ttl::Left(Duration::ZERO)],
            0,
        );
        assert_eq!(
            known.versions(&tags, 0).map(|known| known.versions),
            Some(vec![V1, None]),
            "b is known to be missing"
        );
        // Created since (its message): no longer known.
        known.changed(&mut keys(&tags[1..]).into_iter());
        assert!(known.versions(&tags, 0).is_none(), "b was created");
        // A tag whose two reads disagree (MGET: no tag; PTTL: one that never expires) was
        // written between them, and its message is on its way: not kept.
        let learning = known.learn(&tags[1..], 0).expect("unknown");
        known.learned(&learning, &[None], &[Ttl::Forever], 0);
        assert!(known.versions(&tags, 0).is_none(), "b is not known");

        known.changed_all();
        assert!(known.versions(&tags[..1], 0).is_none(), "flushed");

        let learning = known.learn(&tags[..1], 0).expect("unknown");
        known.learned(&learning, &[V1], &[Ttl::Forever], 0);
        known.distrust();
        assert!(known.versions(&tags[..1], 0).is_none(), "lost");
        assert!(
            known.learn(&tags, 0).is_none(),
            "a lost connection learns nothing"
        );
    }

    #[test]
    fn a_one_get_read_still_holds_only_while_every_version_is_the_one_planned_with() {
        let known = open();
        let tags = tags(&["a", "b"]);
        let learning = known.learn(&tags, 0).expect("unknown");
        known.learned(&learning, &[V1, V1], &[Ttl::Forever, Ttl::Forever], 0);
        let Plan::OneGet(before) = known.plan(&tags, 0) else {
            panic!("both are known")
        };
        assert!(known.still(&tags, &before, 0));
        // Relearned at another version (invalidated, then read again) between plan and reply.
        known.changed(&mut keys(&tags[1..]).into_iter());
        let learning = known.learn(&tags, 0).expect("b is unknown");
        known.learned(&learning, &[Some(Version::from_u64(2))], &[Ttl::Forever], 0);
        assert!(!known.still(&tags, &before, 0));
        known.distrust();
        let Plan::Full(None) = known.plan(&tags, 0) else {
            panic!("a closed table plans a full read, learning nothing")
        };
    }

    #[test]
    fn a_message_for_another_tag_leaves_a_one_get_read_standing_and_expiry_ends_it() {
        let known = open();
        let tags = tags(&["a", "b", "other"]);
        let learning = known.learn(&tags, 0).expect("unknown");
        let ttls = [
            Ttl::Left(Duration::from_millis(100)),
            Ttl::Forever,
            Ttl::Forever,
        ];
        known.learned(&learning, &[V1, V1, V1], &ttls, 0);
        let Plan::OneGet(before) = known.plan(&tags[..2], 10) else {
            panic!("both are known")
        };
        // No message: it holds until the first of its tags may have expired.
        assert!(known.still(&tags[..2], &before, 99));
        assert!(!known.still(&tags[..2], &before, 100));
        // A message, but for a tag this read does not carry: each of its tags is looked up.
        known.changed(&mut keys(&tags[2..]).into_iter());
        assert!(known.still(&tags[..2], &before, 99));
        // A flush, then the same versions learned again: the read was planned before the flush.
        known.changed_all();
        let learning = known.learn(&tags[..2], 20).expect("forgotten");
        known.learned(&learning, &[V1, V1], &[Ttl::Forever, Ttl::Forever], 20);
        assert!(
            known.still(&tags[..2], &before, 30),
            "the same versions, both known"
        );
        known.changed(&mut keys(&tags[..1]).into_iter());
        assert!(!known.still(&tags[..2], &before, 30));
    }

    #[test]
    fn an_abandoned_read_leaves_no_placeholder_behind() {
        let known = open();
        let tags = tags(&["a"]);
        let learning = known.learn(&tags, 0).expect("unknown");
        known.abandon(&learning);
        assert!(known.state().slots.is_empty());
    }

    #[test]
    fn a_set_learns_only_tags_an_earlier_set_named() {
        let known = KnownTags::default();
        known.trust();
        let written = tags(&["a", "b"]);
        assert!(known.learn_for_set(&written, 0).is_none(), "a first set");
        let learning = known.learn_for_set(&written, 0).expect("the second learns");
        assert_eq!(learning.tags().len(), 2);
        // A tag new beside one sighted: nothing learned, both marked.
        let more = tags(&["c", "d"]);
        assert!(known.learn_for_set(&more[..1], 0).is_none());
        assert!(known.learn_for_set(&more, 0).is_none(), "d is new");
        assert!(known.learn_for_set(&more, 0).is_some());
    }
}
