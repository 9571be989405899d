//! A lookup: read the entry and its tags' versions, check freshness, and read the versions of
//! implicit tags the entry carries but the reader did not name (a second round trip, rare).
//!
//! An entry written with a stale window (format 3) is dated by what is left of its time to live
//! on the backend's own clock: fresh while more than the window is left, stale after that. A
//! reader with a stale option asks for the time to live with the read; any other reader asks
//! for it in the second round trip, only when it finds such an entry.

use std::time::Duration;

use super::{Flow, Operation, Progress, ReadReply, Received, Reply, Ttl};
use crate::engine::Expiry;
use crate::format::{self, EntryKeys, Freshness, KeySpace, Observed, TagKey, Version};

/// A fresh entry's value: the stored bytes, and where the value starts (after the header), so
/// that a hit copies nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    bytes: Vec<u8>,
    start: usize,
    /// How long the value may be kept near, if the read asked ([`ReadFlow::asking_expiry`]).
    expiry: Expiry,
}

impl Payload {
    /// `value_len` bytes at the end of `bytes` are the value section (made to start with a
    /// codec id: see [`format::value_section`]).
    fn of(mut bytes: Vec<u8>, value_len: usize) -> Self {
        let value_start = bytes.len() - value_len;
        let start = format::value_section(&mut bytes, value_start);
        Self {
            start,
            bytes,
            expiry: Expiry::Unknown,
        }
    }

    /// How long the value may be kept near: [`Expiry::Unknown`] unless the read asked for it
    /// and found the entry fresh in its first round trip.
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
    /// An entry whose tags are all current but that is past its lifetime, by the duration
    /// given (at most the stale window it was written with): a miss to every caller but
    /// those with a stale option (`decorate::protocol`). The versions observed, as for a miss.
    Stale(Payload, Observed, Duration),
    /// No fresh entry; the versions observed, to stamp the value about to be computed.
    Miss(Observed),
    /// The backend could not answer.
    Unavailable,
}

impl Lookup {
    /// The versions observed, whatever was found (`None`: the backend could not answer).
    pub(crate) fn into_observed(self) -> Option<Observed> {
        match self {
            Lookup::Hit(_, observed) | Lookup::Stale(_, observed, _) | Lookup::Miss(observed) => {
                Some(observed)
            }
            Lookup::Unavailable => None,
        }
    }
}

/// Reads one entry: `Read`, then `ReadTags` only when the entry carries implicit tags the
/// reader did not name, or a stale window and the reader did not ask for its time to live.
pub(crate) struct ReadFlow<'a> {
    keys: &'a EntryKeys,
    space: &'a KeySpace,
    /// The entry's key, as `ReadTags` names the entries whose time to live it asks for.
    entry: [&'a str; 1],
    /// True when the first read asks for the entry's time to live too.
    asks_ttl: bool,
    /// True when the first read asks how long every key read has to live (for the near cache).
    asks_expiry: bool,
    state: ReadState,
}

/// Where a [`ReadFlow`] is. The payloads of its two rare states are boxed: a read is moved with
/// the call's state at every step of a hit, and a small one is moved without a call to `memcpy`.
enum ReadState {
    /// Nothing sent yet (`Some`: the first read's reply came with another operation, the
    /// stampede lock's `Acquire`).
    Start(Option<Box<ReadReply>>),
    /// The entry and its tags were asked for.
    Reading,
    /// The versions of implicit tags were asked for, to finish checking the entry.
    Completing(Box<Completing>),
    Finished,
}

/// An entry read whose implicit tags' versions (and time to live, with `asks_ttl`) are asked
/// for before it can be judged.
struct Completing {
    observed: Observed,
    entry: Vec<u8>,
    tags: Vec<TagKey>,
    ttl: Ttl,
    asks_ttl: bool,
}

impl<'a> ReadFlow<'a> {
    pub(crate) fn new(space: &'a KeySpace, keys: &'a EntryKeys) -> Self {
        Self {
            keys,
            space,
            entry: [keys.entry.as_str()],
            asks_ttl: false,
            asks_expiry: false,
            state: ReadState::Start(None),
        }
    }

    /// With `ask`, also asks how long the entry and its tags have to live, in the same round
    /// trip, so that a value found fresh may be kept near until the first of them expires.
    pub(crate) fn asking_expiry(mut self, ask: bool) -> Self {
        self.asks_expiry = ask;
        self
    }

    /// Asks for the entry's time to live with the entry (a caller with a stale option), so that
    /// an entry with a stale window is dated without a second round trip.
    pub(crate) fn asking_ttl(mut self, asks_ttl: bool) -> Self {
        self.asks_ttl = asks_ttl;
        self
    }

    /// Finishes a read whose first round trip was made with another operation (the stampede
    /// lock's `Acquire`).
    pub(crate) fn completing(space: &'a KeySpace, keys: &'a EntryKeys, reply: ReadReply) -> Self {
        Self {
            state: ReadState::Start(Some(Box::new(reply))),
            ..Self::new(space, keys)
        }
    }

    fn checked(&mut self, reply: ReadReply) -> Progress<Lookup> {
        let mut observed = self.keys.observe(&reply.versions);
        let Some(bytes) = reply.entry else {
            return Progress::Done(Lookup::Miss(observed));
        };
        // A computed value written with these observations replaces only an entry of this
        // lineage (the tombstone found, or the one the entry found descends from).
        observed.tombstone = format::lineage(&bytes);
        if format::is_tombstone(&bytes) {
            return Progress::Done(Lookup::Miss(observed));
        }
        let (tags, value_len) = match format::check(&bytes, &observed) {
            Freshness::Fresh(value) => (Vec::new(), value.len()),
            // The simulator's `stale` mutant: an invalidated entry reads as stale to a caller
            // with a stale option.
            #[cfg(feature = "simulation")]
            Freshness::Stale
                if self.asks_ttl && crate::mutants::active(crate::mutants::Mutant::Stale) =>
            {
                return Progress::Done(match format::value_len(&bytes) {
                    Some(len) => Lookup::Stale(Payload::of(bytes, len), observed, Duration::ZERO),
                    None => Lookup::Miss(observed),
                });
            }
            Freshness::Stale => return Progress::Done(Lookup::Miss(observed)),
            Freshness::Unobserved(ids) => {
                let tags = ids
                    .into_iter()
                    .map(|id| self.space.tag_from_id(id))
                    .collect();
                (tags, 0)
            }
        };
        let asks_ttl = reply.ttl == Ttl::Unasked && !format::stale_window(&bytes).is_zero();
        if tags.is_empty() && !asks_ttl {
            // A value that is fresh may be kept near until the first key expires, less its
            // stale window: past that it is stale, which the near cache never serves.
            let keep = reply.expiry.less(format::stale_window(&bytes));
            return Progress::Done(match dated(bytes, observed, value_len, reply.ttl) {
                Lookup::Hit(mut payload, observed) => {
                    payload.expiry = keep;
                    Lookup::Hit(payload, observed)
                }
                other => other,
            });
        }
        self.state = ReadState::Completing(Box::new(Completing {
            observed,
            entry: bytes,
            tags,
            ttl: reply.ttl,
            asks_ttl,
        }));
        Progress::Send
    }
}

impl Flow for ReadFlow<'_> {
    type Output = Lookup;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Lookup> {
        let state = std::mem::replace(&mut self.state, ReadState::Finished);
        match (state, reply) {
            (ReadState::Start(Some(first)), None) => self.checked(*first),
            (ReadState::Start(None), None) => {
                self.state = ReadState::Reading;
                Progress::Send
            }
            (ReadState::Reading, Some(reply)) => match reply.and_then(Reply::into_read) {
                Ok(read) => self.checked(read),
                Err(_) => Progress::Done(Lookup::Unavailable),
            },
            (ReadState::Completing(completing), Some(reply)) => {
                let Completing {
                    observed,
                    entry,
                    tags,
                    ttl,
                    asks_ttl,
                } = *completing;
                match reply.and_then(Reply::into_versions_and_ttls) {
                    Ok((versions, ttls)) if versions.len() == tags.len() => {
                        let ttl = match asks_ttl {
                            true => ttls.first().copied().unwrap_or_default(),
                            false => ttl,
                        };
                        let implicit: Vec<_> = tags.into_iter().zip(versions).collect();
                        Progress::Done(match rechecked(&entry, &observed, implicit) {
                            Some(value_len) => dated(entry, observed, value_len, ttl),
                            None => Lookup::Miss(observed),
                        })
                    }
                    _ => Progress::Done(Lookup::Unavailable),
                }
            }
            _ => Progress::Done(Lookup::Unavailable),
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        match &self.state {
            ReadState::Reading => Some(Operation::Read {
                entry: &self.keys.entry,
                tags: self.keys.tags(),
                ttl: self.asks_ttl,
                expiry: self.asks_expiry,
            }),
            ReadState::Completing(completing) => Some(Operation::ReadTags {
                tags: &completing.tags,
                ttls_of: if completing.asks_ttl {
                    &self.entry
                } else {
                    &[]
                },
            }),
            ReadState::Start(_) | ReadState::Finished => None,
        }
    }
}

/// Checks `entry` again, once the versions of the `implicit` tags it carries that the reader
/// did not name are known: the length of its value when it is fresh. Those versions are not
/// the reader's to stamp with, so they are not added to what it observed.
fn rechecked(
    entry: &[u8],
    observed: &Observed,
    implicit: Vec<(TagKey, Option<Version>)>,
) -> Option<usize> {
    if implicit.is_empty() {
        return match format::check(entry, observed) {
            Freshness::Fresh(value) => Some(value.len()),
            _ => None,
        };
    }
    let mut extended = observed.clone();
    extended.implicit.extend(implicit);
    match format::check(entry, &extended) {
        Freshness::Fresh(value) => Some(value.len()),
        _ => None,
    }
}

/// Dates an entry whose tags are all current (its last `value_len` bytes are the value): fresh
/// while more than its stale window is left of its time to live, stale (by how much) after.
fn dated(entry: Vec<u8>, observed: Observed, value_len: usize, ttl: Ttl) -> Lookup {
    let window = format::stale_window(&entry);
    let payload = || Payload::of(entry, value_len);
    if window.is_zero() {
        return Lookup::Hit(payload(), observed);
    }
    match ttl {
        Ttl::Left(left) if left > window => Lookup::Hit(payload(), observed),
        Ttl::Forever => Lookup::Hit(payload(), observed),
        Ttl::Left(left) if !left.is_zero() => Lookup::Stale(payload(), observed, window - left),
        // Gone, or undated: nothing to serve.
        Ttl::Left(_) | Ttl::Unasked => Lookup::Miss(observed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BackendError;

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
        let keys = EntryKeys::new(&space, &["k"], ["a"], Vec::new());
        let versions = vec![Some(Version::from_u64(1)), Some(Version::from_u64(2))];
        let reply = Reply::Read(ReadReply {
            entry: Some(stamped(&keys, &versions, b"v")),
            versions,
            ttl: Ttl::Unasked,
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
        let keys = EntryKeys::new(&space, &["k"], ["a"], Vec::new());
        let tombstone = format::tombstone();
        let reply = Reply::Read(ReadReply {
            entry: Some(tombstone.clone()),
            versions: vec![None, None],
            ttl: Ttl::Unasked,
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
        let writer = EntryKeys::new(&space, &["k"], ["a"], vec![function.clone()]);
        let v = |n| Some(Version::from_u64(n));
        let bytes = stamped(&writer, &[v(1), v(2), v(3)], b"v");
        let reader = EntryKeys::new(&space, &["k"], ["a"], Vec::new());
        let first = || {
            Reply::Read(ReadReply {
                entry: Some(bytes.clone()),
                versions: vec![v(1), v(2)],
                ttl: Ttl::Unasked,
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

    /// A read of `bytes` whose versions are `versions`, with the entry's time to live.
    fn dated_reply(bytes: &[u8], versions: &[Option<Version>], ttl: Ttl) -> Reply {
        Reply::Read(ReadReply {
            entry: Some(bytes.to_vec()),
            versions: versions.to_vec(),
            ttl,
            expiry: Expiry::Unknown,
        })
    }

    #[test]
    fn an_entry_with_a_stale_window_is_fresh_while_more_than_the_window_is_left() {
        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, &["k"], ["a"], Vec::new());
        let versions = vec![Some(Version::from_u64(1)), Some(Version::from_u64(2))];
        let window = Duration::from_secs(10);
        let bytes = format::encode_with_window(&keys.observe(&versions), window, b"v").unwrap();
        let read = |ttl| {
            let flow = ReadFlow::new(&space, &keys).asking_ttl(true);
            drive(flow, vec![dated_reply(&bytes, &versions, ttl)])
        };
        assert!(matches!(
            read(Ttl::Left(Duration::from_secs(11))),
            Lookup::Hit(..)
        ));
        match read(Ttl::Left(Duration::from_secs(4))) {
            Lookup::Stale(payload, _, overdue) => {
                assert_eq!((&*payload, overdue), (&b"v"[..], Duration::from_secs(6)));
            }
            other => panic!("expected a stale entry, got {other:?}"),
        }
        assert!(matches!(read(Ttl::Left(Duration::ZERO)), Lookup::Miss(_)));
        // Stale only means past its lifetime: an invalidated tag makes it a miss all the same.
        let invalidated = vec![Some(Version::from_u64(1)), Some(Version::from_u64(9))];
        let flow = ReadFlow::new(&space, &keys).asking_ttl(true);
        let reply = dated_reply(&bytes, &invalidated, Ttl::Left(Duration::from_secs(4)));
        assert!(matches!(drive(flow, vec![reply]), Lookup::Miss(_)));
    }

    #[test]
    fn a_reader_that_did_not_ask_dates_a_windowed_entry_in_a_second_round_trip() {
        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, &["k"], ["a"], Vec::new());
        let versions = vec![Some(Version::from_u64(1)), Some(Version::from_u64(2))];
        let window = Duration::from_secs(10);
        let windowed = format::encode_with_window(&keys.observe(&versions), window, b"v").unwrap();
        let mut flow = ReadFlow::new(&space, &keys);
        assert_eq!(flow.advance(None), Progress::Send);
        let first = dated_reply(&windowed, &versions, Ttl::Unasked);
        assert_eq!(flow.advance(Some(Ok(first))), Progress::Send);
        let Some(Operation::ReadTags { tags, ttls_of }) = flow.operation() else {
            panic!("expected the time to live to be asked for");
        };
        assert!(tags.is_empty());
        assert_eq!(ttls_of, [keys.entry.as_str()]);
        let ttl = Reply::VersionsAndTtls(Vec::new(), vec![Ttl::Left(Duration::from_secs(3))]);
        assert!(matches!(
            flow.advance(Some(Ok(ttl))),
            Progress::Done(Lookup::Stale(..))
        ));
        // An entry without a window costs no second round trip.
        let plain = format::encode(&keys.observe(&versions), b"v").unwrap();
        let reply = dated_reply(&plain, &versions, Ttl::Unasked);
        assert!(matches!(
            drive(ReadFlow::new(&space, &keys), vec![reply]),
            Lookup::Hit(..)
        ));
    }

    #[test]
    fn a_failed_or_misshapen_reply_is_unavailable() {
        let space = KeySpace::new("ns");
        let keys = EntryKeys::new(&space, &["k"], ["a"], Vec::new());
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
