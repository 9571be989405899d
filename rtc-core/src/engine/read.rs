//! A lookup: read the entry and its tags' versions, check freshness, and read the versions of
//! implicit tags the entry carries but the reader did not name (a second round trip, rare).

use super::{Flow, Operation, Progress, ReadReply, Received, Reply};
use crate::format::{self, EntryKeys, Freshness, KeySpace, Observed, TagKey, Version};
use crate::near::Expiry;

/// A fresh entry's value: the stored bytes, and where the value starts (after the header), so
/// that a hit copies nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    bytes: Vec<u8>,
    start: usize,
    /// When the first key the value depends on expires, if the read asked.
    expiry: Expiry,
}

impl Payload {
    /// `value_len` bytes at the end of `bytes` are the value section (made to start with a
    /// codec id: see [`format::value_section`]).
    fn of(mut bytes: Vec<u8>, value_len: usize, expiry: Expiry) -> Self {
        let value_start = bytes.len() - value_len;
        let start = format::value_section(&mut bytes, value_start);
        Self {
            start,
            bytes,
            expiry,
        }
    }

    /// When the first key the value depends on expires ([`Expiry::Unknown`] unless the read
    /// asked, and after a second round trip).
    pub(crate) fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The value alone, owned.
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        self.bytes.drain(..self.start);
        self.bytes
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// What a read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A fresh entry's value bytes, and the versions observed (to re-stamp it if it must be
    /// recomputed, e.g. when it does not decode).
    Hit(Payload, Observed),
    /// No fresh entry; the versions observed, to stamp the value about to be computed.
    Miss(Observed),
    /// The backend could not answer.
    Unavailable,
}

impl Lookup {
    /// The versions observed, whatever was found (`None`: the backend could not answer).
    pub(crate) fn into_observed(self) -> Option<Observed> {
        match self {
            Lookup::Hit(_, observed) | Lookup::Miss(observed) => Some(observed),
            Lookup::Unavailable => None,
        }
    }
}

/// Reads one entry: `Read`, then `ReadTags` only when the entry carries implicit tags the
/// reader did not name.
pub(crate) struct ReadFlow<'a> {
    keys: &'a EntryKeys,
    space: &'a KeySpace,
    /// Ask how long the keys have to live (for the near cache).
    expiry: bool,
    state: ReadState,
}

enum ReadState {
    /// Nothing sent yet (`Some`: the first read's reply came with another operation).
    Start(Option<ReadReply>),
    /// The entry and its tags were asked for.
    Reading,
    /// The versions of `tags` were asked for, to finish checking `entry`.
    ReadingTags {
        observed: Observed,
        entry: Vec<u8>,
        tags: Vec<TagKey>,
    },
    Finished,
}

impl<'a> ReadFlow<'a> {
    pub(crate) fn new(space: &'a KeySpace, keys: &'a EntryKeys) -> Self {
        Self {
            keys,
            space,
            expiry: false,
            state: ReadState::Start(None),
        }
    }

    /// With `ask`, also asks how long the entry and its tags have to live, in the same round
    /// trip.
    pub(crate) fn asking_expiry(mut self, ask: bool) -> Self {
        self.expiry = ask;
        self
    }

    /// Finishes a read whose first round trip was made with another operation (the stampede
    /// lock's `Acquire`).
    pub(crate) fn completing(space: &'a KeySpace, keys: &'a EntryKeys, reply: ReadReply) -> Self {
        Self {
            keys,
            space,
            expiry: false,
            state: ReadState::Start(Some(reply)),
        }
    }

    fn checked(&mut self, reply: ReadReply) -> Progress<Lookup> {
        let mut observed = self.keys.observe(&reply.versions);
        let Some(bytes) = reply.entry else {
            return Progress::Done(Lookup::Miss(observed));
        };
        if format::is_tombstone(&bytes) {
            observed.tombstone = Some(bytes);
            return Progress::Done(Lookup::Miss(observed));
        }
        match format::check(&bytes, &observed) {
            Freshness::Fresh(value) => {
                let value_len = value.len();
                let payload = Payload::of(bytes, value_len, reply.expiry);
                Progress::Done(Lookup::Hit(payload, observed))
            }
            Freshness::Stale => Progress::Done(Lookup::Miss(observed)),
            Freshness::Unobserved(ids) => {
                let tags = ids
                    .into_iter()
                    .map(|id| self.space.tag_from_id(id))
                    .collect();
                self.state = ReadState::ReadingTags {
                    observed,
                    entry: bytes,
                    tags,
                };
                Progress::Send
            }
        }
    }
}

impl Flow for ReadFlow<'_> {
    type Output = Lookup;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Lookup> {
        let state = std::mem::replace(&mut self.state, ReadState::Finished);
        match (state, reply) {
            (ReadState::Start(Some(first)), None) => self.checked(first),
            (ReadState::Start(None), None) => {
                self.state = ReadState::Reading;
                Progress::Send
            }
            (ReadState::Reading, Some(reply)) => match reply.and_then(Reply::into_read) {
                Ok(read) => self.checked(read),
                Err(_) => Progress::Done(Lookup::Unavailable),
            },
            (
                ReadState::ReadingTags {
                    observed,
                    entry,
                    tags,
                },
                Some(reply),
            ) => match reply.and_then(Reply::into_versions) {
                Ok(versions) => Progress::Done(rechecked(observed, entry, tags, &versions)),
                Err(_) => Progress::Done(Lookup::Unavailable),
            },
            _ => Progress::Done(Lookup::Unavailable),
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        match &self.state {
            ReadState::Reading => Some(Operation::Read {
                entry: &self.keys.entry,
                tags: self.keys.tags(),
                expiry: self.expiry,
            }),
            ReadState::ReadingTags { tags, .. } => Some(Operation::ReadTags { tags }),
            ReadState::Start(_) | ReadState::Finished => None,
        }
    }
}

/// Checks the entry again once the implicit tags' versions are known.
fn rechecked(
    observed: Observed,
    entry: Vec<u8>,
    tags: Vec<TagKey>,
    versions: &[Option<Version>],
) -> Lookup {
    let mut extended = observed.clone();
    extended
        .implicit
        .extend(tags.into_iter().zip(versions.iter().copied()));
    match format::check(&entry, &extended) {
        Freshness::Fresh(value) => {
            let value_len = value.len();
            Lookup::Hit(Payload::of(entry, value_len, Expiry::Unknown), observed)
        }
        _ => Lookup::Miss(observed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;

    fn drive(mut flow: ReadFlow<'_>, replies: Vec<Reply>) -> Lookup {
        let mut replies = replies.into_iter();
        let mut reply = None;
        loop {
            match flow.advance(reply.take()) {
                Progress::Done(lookup) => return lookup,
                Progress::Send => {
                    assert!(flow.operation().is_some());
                    reply = Some(Ok(replies.next().expect("a reply for every operation")));
                }
            }
        }
    }

    fn stamped(keys: &EntryKeys, versions: &[Option<Version>], value: &[u8]) -> Vec<u8> {
        format::encode(&keys.observe(versions), value).unwrap()
    }

    #[test]
    fn a_read_whose_versions_match_is_a_hit_in_one_round_trip() {
        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, "k", ["a"], Vec::new());
        let versions = vec![Some(Version::from_u64(1)), Some(Version::from_u64(2))];
        let reply = Reply::Read(ReadReply {
            entry: Some(stamped(&keys, &versions, b"v")),
            versions,
            expiry: Expiry::Unknown,
        });
        match drive(ReadFlow::new(&space, &keys), vec![reply]) {
            Lookup::Hit(payload, _) => assert_eq!(&*payload, b"v"),
            other => panic!("expected a hit, got {other:?}"),
        }
    }

    #[test]
    fn a_tombstone_is_a_miss_that_remembers_it() {
        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, "k", ["a"], Vec::new());
        let tombstone = format::tombstone();
        let reply = Reply::Read(ReadReply {
            entry: Some(tombstone.clone()),
            versions: vec![None, None],
            expiry: Expiry::Unknown,
        });
        match drive(ReadFlow::new(&space, &keys), vec![reply]) {
            Lookup::Miss(observed) => assert_eq!(observed.tombstone, Some(tombstone)),
            other => panic!("expected a miss, got {other:?}"),
        }
    }

    #[test]
    fn unnamed_implicit_tags_are_read_in_a_second_round_trip() {
        let space = KeySpace::new("ns");
        let function = space.implicit_tag("f");
        let writer = EntryKeys::new(&space, "k", ["a"], vec![function.clone()]);
        let v = |n| Some(Version::from_u64(n));
        let bytes = stamped(&writer, &[v(1), v(2), v(3)], b"v");
        let reader = EntryKeys::new(&space, "k", ["a"], Vec::new());
        let first = || {
            Reply::Read(ReadReply {
                entry: Some(bytes.clone()),
                versions: vec![v(1), v(2)],
                expiry: Expiry::Unknown,
            })
        };
        let fresh = drive(
            ReadFlow::new(&space, &reader),
            vec![first(), Reply::Versions(vec![v(3)])],
        );
        assert!(matches!(fresh, Lookup::Hit(..)), "{fresh:?}");
        let invalidated = drive(
            ReadFlow::new(&space, &reader),
            vec![first(), Reply::Versions(vec![v(4)])],
        );
        assert!(matches!(invalidated, Lookup::Miss(_)), "{invalidated:?}");
    }

    #[test]
    fn a_failed_or_misshapen_reply_is_unavailable() {
        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, "k", ["a"], Vec::new());
        let mut flow = ReadFlow::new(&space, &keys);
        assert_eq!(flow.advance(None), Progress::Send);
        assert_eq!(
            flow.advance(Some(Err(BackendError::Skipped))),
            Progress::Done(Lookup::Unavailable)
        );
        assert_eq!(
            drive(ReadFlow::new(&space, &keys), vec![Reply::Ok]),
            Lookup::Unavailable
        );
    }
}
