//! One entry's keys, and the step from what a backend returned to a hit or a miss.

use crate::entry::{self, Freshness, Observed};
use crate::keys::{KeySpace, TagId, TagKey};
use crate::version::Version;

/// The keys of one entry: where it is stored, and the tags it is checked against.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub entry: String,
    /// The canonical tags (the namespace tag, then the user tags sorted and deduplicated), then
    /// the implicit ones (tags the entry carries that are not part of its identity).
    tags: Vec<TagKey>,
    canonical: usize,
}

impl Request {
    pub(crate) fn new<I, S>(space: &KeySpace, key: &str, tags: I, implicit: Vec<TagKey>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let owned: Vec<S> = tags.into_iter().collect();
        let mut sorted: Vec<&str> = owned.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut all = Vec::with_capacity(sorted.len() + 1 + implicit.len());
        all.push(space.namespace_tag());
        all.extend(sorted.iter().map(|tag| space.user_tag(tag)));
        let canonical = all.len();
        all.extend(implicit);
        Self {
            entry: space.entry(key, &sorted),
            tags: all,
            canonical,
        }
    }

    /// Every tag, canonical first, in the order a read asks for their versions.
    pub(crate) fn tags(&self) -> &[TagKey] {
        &self.tags
    }

    /// Pairs every tag with a version read in [`Request::tags`] order.
    pub(crate) fn observe(&self, versions: &[Option<Version>]) -> Observed {
        let mut versions = versions.iter().copied();
        let mut pair = |tag: &TagKey| (tag.clone(), versions.next().flatten());
        let (canonical, implicit) = self.tags.split_at(self.canonical);
        Observed {
            canonical: canonical.iter().map(&mut pair).collect(),
            implicit: implicit.iter().map(&mut pair).collect(),
            tombstone: None,
        }
    }

    /// Every tag with no version yet: what a write that reads versions itself starts from.
    pub(crate) fn unobserved(&self) -> Observed {
        self.observe(&[])
    }
}

/// A fresh entry's value: the stored bytes, and where the value starts (after the header), so
/// that a hit copies nothing.
#[derive(Debug)]
pub(crate) struct Payload {
    bytes: Vec<u8>,
    start: usize,
}

impl Payload {
    /// `value` must be a suffix of `bytes`.
    fn of(bytes: Vec<u8>, value_len: usize) -> Self {
        Self {
            start: bytes.len() - value_len,
            bytes,
        }
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
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A fresh entry's value bytes, and the versions observed (to re-stamp it if it must be
    /// recomputed, e.g. when it does not decode).
    Hit(Payload, Observed),
    /// No fresh entry; the versions observed, to stamp the value about to be computed.
    Miss(Observed),
    /// The backend could not answer.
    Unavailable,
}

/// The outcome of the first read, or the tags whose versions a second read must fetch.
pub(crate) enum FirstRead {
    Done(Lookup),
    Unobserved {
        observed: Observed,
        entry: Vec<u8>,
        tags: Vec<TagId>,
    },
}

pub(crate) fn first_read(
    request: &Request,
    entry: Option<Vec<u8>>,
    versions: &[Option<Version>],
) -> FirstRead {
    let mut observed = request.observe(versions);
    let Some(bytes) = entry else {
        return FirstRead::Done(Lookup::Miss(observed));
    };
    if entry::is_tombstone(&bytes) {
        observed.tombstone = Some(bytes);
        return FirstRead::Done(Lookup::Miss(observed));
    }
    match entry::check(&bytes, &observed) {
        Freshness::Fresh(value) => {
            let value_len = value.len();
            FirstRead::Done(Lookup::Hit(Payload::of(bytes, value_len), observed))
        }
        Freshness::Stale => FirstRead::Done(Lookup::Miss(observed)),
        Freshness::Unobserved(tags) => FirstRead::Unobserved {
            observed,
            entry: bytes,
            tags,
        },
    }
}

/// Checks the entry again once the extra tags' versions are known.
pub(crate) fn second_read(
    observed: Observed,
    entry: Vec<u8>,
    tags: Vec<TagKey>,
    versions: &[Option<Version>],
) -> Lookup {
    let mut extended = observed.clone();
    extended
        .implicit
        .extend(tags.into_iter().zip(versions.iter().copied()));
    match entry::check(&entry, &extended) {
        Freshness::Fresh(value) => {
            let value_len = value.len();
            Lookup::Hit(Payload::of(entry, value_len), observed)
        }
        _ => Lookup::Miss(observed),
    }
}
