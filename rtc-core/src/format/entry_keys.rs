//! One entry's keys: where it is stored, and the tags it is checked against.

use smallvec::SmallVec;

use super::entry::Observed;
use super::keys::{EntryKey, KeySpace, TagKey};
use super::version::Version;

/// The keys of one entry: where it is stored, and the tags it is checked against.
#[derive(Clone, Debug)]
pub(crate) struct EntryKeys {
    pub entry: EntryKey,
    /// The canonical tags (the namespace tag, then the user tags sorted and deduplicated), then
    /// the implicit ones (tags the entry carries that are not part of its identity). Inline up to
    /// a decorated function's usual three: the namespace's, one user tag, the function's.
    tags: SmallVec<[TagKey; 3]>,
    canonical: usize,
}

impl EntryKeys {
    /// The keys of the entry whose key is the concatenation of `key`'s parts, with these tags
    /// and implicit tags.
    pub(crate) fn new<I, S>(
        space: &KeySpace,
        key: &[&str],
        tags: I,
        implicit: impl IntoIterator<Item = TagKey>,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let implicit = implicit.into_iter();
        let mut tags = tags.into_iter();
        let mut all = SmallVec::<[TagKey; 3]>::with_capacity(2 + implicit.size_hint().0);
        all.push(space.namespace_tag());
        // One tag (a decorated function's usual case) needs no list to sort.
        let entry = match (tags.next(), tags.next()) {
            (None, _) => space.entry(key, &[]),
            (Some(only), None) => {
                let only = only.as_ref();
                all.push(space.user_tag(only));
                space.entry(key, &[only])
            }
            (Some(first), Some(second)) => {
                let owned: Vec<S> = [first, second].into_iter().chain(tags).collect();
                let mut sorted: Vec<&str> = owned.iter().map(AsRef::as_ref).collect();
                sorted.sort_unstable();
                sorted.dedup();
                all.reserve(sorted.len());
                all.extend(sorted.iter().map(|tag| space.user_tag(tag)));
                space.entry(key, &sorted)
            }
        };
        let canonical = all.len();
        all.extend(implicit);
        Self {
            entry,
            tags: all,
            canonical,
        }
    }

    /// Every tag, canonical first, in the order a read asks for their versions.
    pub(crate) fn tags(&self) -> &[TagKey] {
        &self.tags
    }

    /// Pairs every tag with a version read in [`EntryKeys::tags`] order.
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
