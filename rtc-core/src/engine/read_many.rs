//! A batch lookup: every entry and every tag they carry in one `ReadMany`, then each entry
//! checked as a lone read checks it ([`ReadFlow`]); the implicit tags those entries carry but
//! their readers did not name are read for all of them in one more round trip.

use std::collections::HashMap;

use super::{
    Flow, Lookup, ManyReply, Operation, Progress, ReadFlow, ReadReply, Received, Reply, Ttl,
};
use crate::format::{EntryKeys, KeySpace, TagKey};

/// Reads many entries at once. Outputs one [`Lookup`] per entry asked for, in order; an entry
/// asked for twice is read once.
pub(crate) struct ReadManyFlow<'a> {
    space: &'a KeySpace,
    keys: &'a [EntryKeys],
    /// Per entry asked for, its position among the distinct entries.
    slots: Vec<usize>,
    /// The distinct entries' keys; per distinct entry, the first entry asked for that has it
    /// and the positions of its tags in `tags`.
    entries: Vec<&'a str>,
    first: Vec<usize>,
    tags_of: Vec<Vec<usize>>,
    /// Every tag of the batch, once.
    tags: Vec<TagKey>,
    /// Per distinct entry, what its read found, once known.
    found: Vec<Option<Lookup>>,
    state: ManyState<'a>,
}

enum ManyState<'a> {
    Start,
    /// The entries and their tags were asked for.
    Reading,
    /// The reads of `pending` (distinct entry, its flow) asked for tags' versions: `tags` holds
    /// each of those tags once, and `wanted` per pending read the positions of the ones it asked
    /// and of its entry in `ttls_of` if it asked for the entry's time to live.
    Completing {
        pending: Vec<(usize, ReadFlow<'a>)>,
        tags: Vec<TagKey>,
        ttls_of: Vec<&'a str>,
        wanted: Vec<(Vec<usize>, Option<usize>)>,
    },
    Finished,
}

/// Collects tags, each once, and says where each one sits.
#[derive(Default)]
struct DistinctTags<'t> {
    positions: HashMap<&'t TagKey, usize>,
    tags: Vec<TagKey>,
}

impl<'t> DistinctTags<'t> {
    fn position(&mut self, tag: &'t TagKey) -> usize {
        *self.positions.entry(tag).or_insert_with(|| {
            self.tags.push(tag.clone());
            self.tags.len() - 1
        })
    }
}

impl<'a> ReadManyFlow<'a> {
    pub(crate) fn new(space: &'a KeySpace, keys: &'a [EntryKeys]) -> Self {
        let mut distinct: HashMap<&str, usize> = HashMap::new();
        let mut entries = Vec::new();
        let mut tags = DistinctTags::default();
        let mut first = Vec::new();
        let mut tags_of = Vec::new();
        let slots = keys
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                *distinct.entry(&entry.entry).or_insert_with(|| {
                    entries.push(entry.entry.as_str());
                    first.push(index);
                    tags_of.push(entry.tags().iter().map(|tag| tags.position(tag)).collect());
                    entries.len() - 1
                })
            })
            .collect();
        Self {
            space,
            keys,
            slots,
            found: (0..entries.len()).map(|_| None).collect(),
            entries,
            first,
            tags_of,
            tags: tags.tags,
            state: ManyState::Start,
        }
    }

    /// Checks every entry against the versions read; those that need more versions go on.
    fn checked(&mut self, reply: ManyReply) -> Progress<Vec<Lookup>> {
        if reply.entries.len() != self.entries.len() || reply.versions.len() != self.tags.len() {
            return self.finished();
        }
        let mut pending = Vec::new();
        for (distinct, entry) in reply.entries.into_iter().enumerate() {
            let read = ReadReply {
                entry,
                versions: self.tags_of[distinct]
                    .iter()
                    .map(|&at| reply.versions[at])
                    .collect(),
                ttl: Ttl::Unasked,
                expiry: crate::engine::Expiry::Unknown,
            };
            let keys = &self.keys[self.first[distinct]];
            let flow = ReadFlow::completing(self.space, keys, read);
            pending.push((distinct, flow));
        }
        self.advanced(pending, |_| None)
    }

    /// Advances each pending read with its reply; gathers the operations of those that go on
    /// (tags' versions, entries' times to live) into one `ReadTags`, or finishes when none does.
    fn advanced(
        &mut self,
        pending: Vec<(usize, ReadFlow<'a>)>,
        mut reply_to: impl FnMut(usize) -> Option<Received>,
    ) -> Progress<Vec<Lookup>> {
        let mut still = Vec::new();
        let mut tags = DistinctTags::default();
        let mut asked = Vec::new();
        let mut ttls_of = Vec::new();
        for (index, (distinct, mut flow)) in pending.into_iter().enumerate() {
            match flow.advance(reply_to(index)) {
                Progress::Done(lookup) => self.found[distinct] = Some(lookup),
                Progress::Send => match flow.operation() {
                    Some(Operation::ReadTags { tags, ttls_of: own }) => {
                        // A read asks for its own entry's time to live, if for any.
                        let ttl_at = (!own.is_empty()).then(|| {
                            ttls_of.push(self.entries[distinct]);
                            ttls_of.len() - 1
                        });
                        asked.push((tags.to_vec(), ttl_at));
                        still.push((distinct, flow));
                    }
                    _ => self.found[distinct] = Some(Lookup::Unavailable),
                },
            }
        }
        if still.is_empty() {
            return self.finished();
        }
        let wanted = asked
            .iter()
            .map(|(asked, ttl_at)| {
                (
                    asked.iter().map(|tag| tags.position(tag)).collect(),
                    *ttl_at,
                )
            })
            .collect();
        let tags = tags.tags;
        self.state = ManyState::Completing {
            pending: still,
            tags,
            ttls_of,
            wanted,
        };
        Progress::Send
    }

    /// Every entry asked for, in order; an entry whose read did not finish is unavailable.
    fn finished(&mut self) -> Progress<Vec<Lookup>> {
        let mut remaining = vec![0_usize; self.found.len()];
        for &slot in &self.slots {
            remaining[slot] += 1;
        }
        let lookups = self
            .slots
            .iter()
            .map(|&slot| {
                remaining[slot] -= 1;
                let found = &mut self.found[slot];
                match found {
                    Some(lookup) if remaining[slot] > 0 => lookup.clone(),
                    Some(_) => found.take().unwrap_or(Lookup::Unavailable),
                    None => Lookup::Unavailable,
                }
            })
            .collect();
        self.state = ManyState::Finished;
        Progress::Done(lookups)
    }
}

impl Flow for ReadManyFlow<'_> {
    type Output = Vec<Lookup>;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Vec<Lookup>> {
        let state = std::mem::replace(&mut self.state, ManyState::Finished);
        match (state, reply) {
            (ManyState::Start, None) if self.entries.is_empty() => Progress::Done(Vec::new()),
            (ManyState::Start, None) => {
                self.state = ManyState::Reading;
                Progress::Send
            }
            (ManyState::Reading, Some(reply)) => match reply.and_then(Reply::into_many) {
                Ok(many) => self.checked(many),
                Err(_) => self.finished(),
            },
            (
                ManyState::Completing {
                    pending,
                    tags,
                    ttls_of: _,
                    wanted,
                },
                Some(reply),
            ) => match reply.and_then(Reply::into_versions_and_ttls) {
                Ok((versions, ttls)) if versions.len() == tags.len() => {
                    self.advanced(pending, |index| {
                        let (tags_at, ttl_at) = &wanted[index];
                        let picked = tags_at.iter().map(|&at| versions[at]).collect();
                        let ttl = ttl_at.and_then(|at| ttls.get(at).copied());
                        Some(Ok(Reply::VersionsAndTtls(
                            picked,
                            ttl.into_iter().collect(),
                        )))
                    })
                }
                _ => self.finished(),
            },
            _ => self.finished(),
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        match &self.state {
            ManyState::Reading => Some(Operation::ReadMany {
                entries: &self.entries,
                tags: &self.tags,
            }),
            ManyState::Completing { tags, ttls_of, .. } => {
                Some(Operation::ReadTags { tags, ttls_of })
            }
            ManyState::Start | ManyState::Finished => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BackendError;
    use crate::format::{self, Version};

    fn v(n: u64) -> Option<Version> {
        Some(Version::from_u64(n))
    }

    /// Runs `flow`, answering each operation with the next reply; also counts the round trips.
    fn drive(mut flow: ReadManyFlow<'_>, replies: Vec<Received>) -> (Vec<Lookup>, usize) {
        let mut replies = replies.into_iter();
        let mut round_trips = 0;
        let mut reply = None;
        loop {
            match flow.advance(reply.take()) {
                Progress::Done(lookups) => return (lookups, round_trips),
                Progress::Send => {
                    assert!(flow.operation().is_some());
                    round_trips += 1;
                    reply = Some(replies.next().expect("a reply for every operation"));
                }
            }
        }
    }

    fn stamped(keys: &EntryKeys, versions: &[Option<Version>], value: &[u8]) -> Option<Vec<u8>> {
        Some(format::encode(&keys.observe(versions), value).unwrap())
    }

    fn value(lookup: &Lookup) -> Option<&[u8]> {
        match lookup {
            Lookup::Hit(payload, _) => Some(payload),
            _ => None,
        }
    }

    /// Entries of one tag each, as a low-level reader names them.
    fn read_as(space: &KeySpace, entries: &[(&str, &str)]) -> Vec<EntryKeys> {
        entries
            .iter()
            .map(|(key, tag)| EntryKeys::new(space, &[key], [tag], Vec::new()))
            .collect()
    }

    fn many(entries: Vec<Option<Vec<u8>>>, versions: Vec<Option<Version>>) -> Received {
        Ok(Reply::Many(ManyReply { entries, versions }))
    }

    #[test]
    fn one_read_asks_for_each_entry_and_each_tag_once() {
        let space = KeySpace::new("ns");
        let keys = [
            EntryKeys::new(&space, &["a"], ["shared", "x"], Vec::new()),
            EntryKeys::new(&space, &["b"], ["shared"], Vec::new()),
            EntryKeys::new(&space, &["a"], ["x", "shared"], Vec::new()),
        ];
        let mut flow = ReadManyFlow::new(&space, &keys);
        assert_eq!(flow.advance(None), Progress::Send);
        let Some(Operation::ReadMany { entries, tags }) = flow.operation() else {
            panic!("expected one ReadMany");
        };
        assert_eq!(entries, [keys[0].entry.as_str(), keys[1].entry.as_str()]);
        assert_eq!(tags.len(), 3, "the namespace tag, shared and x, each once");
        assert_eq!(tags[..], keys[0].tags()[..]);
    }

    #[test]
    fn hits_misses_tombstones_and_stale_entries_come_back_in_order() {
        let space = KeySpace::new("ns");
        let keys = read_as(
            &space,
            &[
                ("fresh", "t"),
                ("absent", "t"),
                ("deleted", "t"),
                ("stale", "u"),
                ("fresh", "t"),
            ],
        );
        // Tags in first-seen order: namespace, t, u.
        let tombstone = format::tombstone();
        let reply = many(
            vec![
                stamped(&keys[0], &[v(1), v(2)], b"one"),
                None,
                Some(tombstone.clone()),
                stamped(&keys[3], &[v(1), v(8)], b"old"),
            ],
            vec![v(1), v(2), v(9)],
        );
        let (lookups, round_trips) = drive(ReadManyFlow::new(&space, &keys), vec![reply]);
        assert_eq!(round_trips, 1);
        assert_eq!(lookups.len(), 5);
        assert_eq!(value(&lookups[0]), Some(&b"one"[..]));
        assert!(matches!(lookups[1], Lookup::Miss(_)));
        match &lookups[2] {
            Lookup::Miss(observed) => assert_eq!(observed.tombstone, Some(tombstone)),
            other => panic!("expected a miss, got {other:?}"),
        }
        assert!(matches!(lookups[3], Lookup::Miss(_)), "u was invalidated");
        assert_eq!(
            value(&lookups[4]),
            Some(&b"one"[..]),
            "a repeated entry, answered twice"
        );
    }

    #[test]
    fn implicit_tags_of_every_entry_are_read_together_in_a_second_round_trip() {
        let space = KeySpace::new("ns");
        let (f, g) = (space.implicit_tag("f"), space.implicit_tag("g"));
        let written = [
            EntryKeys::new(&space, &["a"], ["t"], vec![f.clone()]),
            EntryKeys::new(&space, &["b"], ["t"], vec![f.clone(), g.clone()]),
        ];
        let keys = read_as(&space, &[("a", "t"), ("b", "t"), ("plain", "t")]);
        let first = many(
            vec![
                stamped(&written[0], &[v(1), v(2), v(3)], b"a"),
                stamped(&written[1], &[v(1), v(2), v(3), v(4)], b"b"),
                stamped(&keys[2], &[v(1), v(2)], b"plain"),
            ],
            vec![v(1), v(2)],
        );
        let mut flow = ReadManyFlow::new(&space, &keys);
        assert_eq!(flow.advance(None), Progress::Send);
        assert_eq!(flow.advance(Some(first)), Progress::Send);
        let Some(Operation::ReadTags { tags, .. }) = flow.operation() else {
            panic!("expected the implicit tags to be read");
        };
        assert_eq!(tags, [f.clone(), g.clone()], "f once, for both entries");
        // g was invalidated: b misses, a still hits.
        let Progress::Done(lookups) = flow.advance(Some(Ok(Reply::Versions(vec![v(3), v(5)]))))
        else {
            panic!("expected the lookups");
        };
        assert_eq!(value(&lookups[0]), Some(&b"a"[..]));
        assert!(matches!(lookups[1], Lookup::Miss(_)));
        assert_eq!(value(&lookups[2]), Some(&b"plain"[..]));
    }

    #[test]
    fn a_failed_round_trip_misses_every_entry_it_left_unread() {
        let space = KeySpace::new("ns");
        let keys = read_as(&space, &[("a", "t"), ("b", "t")]);
        let (lookups, _) = drive(
            ReadManyFlow::new(&space, &keys),
            vec![Err(BackendError::Skipped)],
        );
        assert_eq!(lookups, [Lookup::Unavailable, Lookup::Unavailable]);
        let (lookups, _) = drive(ReadManyFlow::new(&space, &keys), vec![Ok(Reply::Ok)]);
        assert_eq!(lookups, [Lookup::Unavailable, Lookup::Unavailable]);
        let short = many(vec![None], vec![v(1), v(2)]);
        let (lookups, _) = drive(ReadManyFlow::new(&space, &keys), vec![short]);
        assert_eq!(lookups, [Lookup::Unavailable, Lookup::Unavailable]);

        let f = space.implicit_tag("f");
        let written = EntryKeys::new(&space, &["a"], ["t"], vec![f]);
        let first = many(
            vec![stamped(&written, &[v(1), v(2), v(3)], b"a"), None],
            vec![v(1), v(2)],
        );
        let (lookups, round_trips) = drive(
            ReadManyFlow::new(&space, &keys),
            vec![first, Err(BackendError::Skipped)],
        );
        assert_eq!(round_trips, 2);
        assert_eq!(lookups[0], Lookup::Unavailable);
        assert!(
            matches!(lookups[1], Lookup::Miss(_)),
            "b was settled by the first read"
        );
    }

    #[test]
    fn an_empty_batch_sends_nothing() {
        let space = KeySpace::new("ns");
        let (lookups, round_trips) = drive(ReadManyFlow::new(&space, &[]), Vec::new());
        assert!(lookups.is_empty());
        assert_eq!(round_trips, 0);
    }
}
