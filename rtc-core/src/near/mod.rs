//! The near cache: fresh entries kept in this process's memory, answered without a round trip,
//! and dropped as soon as this process learns that anything they depend on changed.
//!
//! An entry is kept here only after a read from Redis found it fresh, and only while every key
//! that read depended on (the entry key and each tag key) stays [watched](watches): Redis
//! announces each change to those keys (`CLIENT TRACKING`, see `backend::redis::tracking`), this
//! process's own writes end the watches on what they wrote before they return, and a lost
//! tracking connection ends them all. A hit is then a hash-map lookup, a few atomic loads, a
//! deadline check and a clone: no SHA-256, no decoding for decorated functions (their entries
//! hold the decoded value).

#![forbid(unsafe_code)]

mod entry;
mod identity;
mod kept;
mod recent;
mod watches;

use std::sync::Arc;
use std::time::{Duration, Instant};

use self::entry::NearEntry;
use self::identity::Identity;
pub use self::identity::KeyedTags;
pub(crate) use self::identity::Named;
pub(crate) use self::kept::{Kept, NearValue};
pub(crate) use self::watches::{Watch, Watches};
use crate::clock::Deadline;
use crate::engine::{Expiry, Operation};
use crate::format::{EntryKeys, Observed, Version};

/// A read whose value may be kept near, registered before it is sent.
pub(crate) struct Fill {
    hash: u64,
    identity: Identity,
    watched: Vec<Arc<Watch>>,
    sent: Instant,
}

/// The near cache of one [`crate::TaggedCache`].
pub(crate) struct NearCache {
    /// This near cache's number, for the entries each thread [found last](recent).
    owner: u64,
    entries: quick_cache::sync::Cache<u64, Arc<NearEntry>>,
    watches: Watches,
    max_age: Option<Duration>,
}

impl NearCache {
    /// At most `max_entries` entries, each for at most `max_age`. Not trusted (so not used)
    /// until tracking is set up, or at once for a backend no other process shares.
    pub(crate) fn new(max_entries: u64, max_age: Option<Duration>) -> Self {
        let capacity = usize::try_from(max_entries).unwrap_or(usize::MAX).max(1);
        Self {
            owner: recent::next_owner(),
            entries: quick_cache::sync::Cache::new(capacity),
            watches: Watches::default(),
            max_age,
        }
    }

    /// The fresh entry `named` names in the shared map, remembered as this thread's last.
    fn shared<S: AsRef<str>>(&self, named: &Named<'_, S>, hash: u64) -> Option<Arc<NearEntry>> {
        let entry = self.entries.get(&hash)?;
        if !named.is(&entry.identity) {
            return None;
        }
        if entry.is_fresh() {
            recent::remember(self.owner, hash, &entry);
            return Some(entry);
        }
        self.entries
            .remove_if(&hash, |kept| Arc::ptr_eq(kept, &entry));
        None
    }

    /// What `take` makes of the fresh near entry `named` names, if there is one.
    pub(crate) fn answer<S: AsRef<str>, R>(
        &self,
        named: &Named<'_, S>,
        take: impl Fn(&Kept) -> Option<R>,
    ) -> Option<R> {
        let mut answer = None;
        self.answer_into(named, &mut answer, |kept, answer| *answer = take(kept));
        answer
    }

    /// As [`NearCache::answer`], into `answer` (left as it is when there is none), which `take`
    /// fills from the entry. The value is written once, where the caller wants it: returned
    /// through each step, it was copied at each, and each copy read the bytes its clone had
    /// just written, a stall on the path of every hit. An entry this thread found last is read
    /// in place, without taking a reference to it.
    pub(crate) fn answer_into<S: AsRef<str>, R>(
        &self,
        named: &Named<'_, S>,
        answer: &mut Option<R>,
        take: impl Fn(&Kept, &mut Option<R>),
    ) {
        let hash = named.hash();
        recent::visit(self.owner, hash, |entry| {
            if entry.answers(named) {
                take(entry, answer);
            }
        });
        if answer.is_none() {
            if let Some(entry) = self.shared(named, hash) {
                take(&entry, answer);
            }
        }
    }

    /// Watches `keys` (the entry key and every tag key its read names) before the read of
    /// `named` is sent; `None` while the near cache cannot be trusted.
    pub(crate) fn fill<'k, S: AsRef<str>>(
        &self,
        named: &Named<'_, S>,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Option<Fill> {
        let watched = self.watches.watch(keys)?;
        Some(Fill {
            hash: named.hash(),
            identity: named.owned(),
            watched,
            sent: crate::clock::now(),
        })
    }

    /// Watches the entry key and every tag key of `keys` before the read of `named` is sent
    /// (a decorated call's or a low-level read's first lookup); `None` while the near cache
    /// cannot be trusted.
    pub(crate) fn fill_entry<S: AsRef<str>>(
        &self,
        named: &Named<'_, S>,
        keys: &EntryKeys,
    ) -> Option<Fill> {
        let watched =
            std::iter::once(keys.entry.as_str()).chain(keys.tags().iter().map(|tag| tag.as_str()));
        self.fill(named, watched)
    }

    /// Keeps a decorated call's decoded value, which a fill's read found fresh with the tag
    /// versions `observed`.
    pub(crate) fn keep_decoded(
        &self,
        fill: Fill,
        value: Box<dyn std::any::Any + Send + Sync>,
        expiry: Expiry,
        observed: &Observed,
    ) {
        let versions = observed.all().map(|(_, version)| *version);
        self.keep(fill, NearValue::Decoded(value), expiry, versions);
    }

    /// `operation` was sent by this process (landed or not): what it changes is no longer
    /// trusted, before the call that sent it returns.
    pub(crate) fn changed_by(&self, operation: &Operation<'_>) {
        let keys = operation.changed_keys();
        if !keys.is_empty() {
            self.watches.changed(keys);
        }
    }

    /// Keeps the value a fill's read found fresh, unless a key it depends on changed since the
    /// fill was registered, or its expiry is unknown. `versions`: what the read found for each
    /// tag, in the order of the fill's tag keys (learned by their watches, for `set`).
    pub(crate) fn keep(
        &self,
        fill: Fill,
        value: NearValue,
        expiry: Expiry,
        versions: impl IntoIterator<Item = Option<Version>>,
    ) {
        // The earliest expiry of the keys read bounds each tag's own (a version is learned only
        // when it is known).
        let read_until = match expiry {
            Expiry::Unknown => None,
            Expiry::Never => Some(None),
            Expiry::After(left) => Some(Some(fill.sent + left)),
        };
        if let Some(until) = read_until {
            for (watch, version) in fill.watched.iter().skip(1).zip(versions) {
                if let Some(version) = version {
                    watch.learn(version, until);
                }
            }
        }
        let lifetime = match (expiry, self.max_age) {
            (Expiry::Unknown, _) => return,
            (Expiry::Never, max_age) => max_age,
            (Expiry::After(left), max_age) => Some(max_age.map_or(left, |age| age.min(left))),
        };
        if lifetime.is_some_and(|lifetime| lifetime.is_zero()) {
            return;
        }
        let kept = Kept {
            identity: fill.identity,
            value,
            watched: fill.watched.into_boxed_slice(),
            expires: lifetime.and_then(|lifetime| Deadline::after(fill.sent, lifetime)),
        };
        if kept.watched.iter().all(|watch| watch.is_live()) {
            self.entries
                .insert(fill.hash, Arc::new(NearEntry::new(kept)));
        }
    }

    /// What changes are announced to.
    pub(crate) fn watches(&self) -> &Watches {
        &self.watches
    }

    /// Changes may have been missed: nothing kept is used, and nothing is kept, until
    /// [`NearCache::trust`].
    pub(crate) fn distrust(&self) {
        self.watches.distrust();
        self.entries.clear();
    }

    /// Changes are announced from now on.
    pub(crate) fn trust(&self) {
        self.watches.trust();
    }

    /// Every key of the database changed (`FLUSHALL`, `FLUSHDB`).
    pub(crate) fn changed_all(&self) {
        self.watches.changed_all();
        self.entries.clear();
    }

    /// True when no entry is kept (a simulator's shortcut before asking for each).
    #[cfg(feature = "simulation")]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries are kept (dead ones not yet dropped included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;

    use super::*;

    fn section(bytes: &[u8]) -> NearValue {
        NearValue::Section(Box::from(bytes))
    }

    impl NearCache {
        /// What a hit on `named` finds, as these tests look at it: the kept section's bytes
        /// (none for a decoded value).
        fn get<S: AsRef<str>>(&self, named: &Named<'_, S>) -> Option<Vec<u8>> {
            self.answer(named, |kept| match kept.value() {
                NearValue::Section(bytes) => Some(bytes.to_vec()),
                NearValue::Decoded(_) => Some(Vec::new()),
            })
        }
    }

    fn trusted(max_age: Option<Duration>) -> NearCache {
        let near = NearCache::new(100, max_age);
        near.trust();
        near
    }

    #[test]
    fn a_kept_value_is_found_under_the_same_key_and_tags() {
        let near = trusted(None);
        let fill = near
            .fill(&Named::new("", "k", &["b", "a"]), ["e", "t"])
            .unwrap();
        near.keep(fill, section(b"v"), Expiry::Never, []);
        let hit = near.get(&Named::new("", "k", &["b", "a"])).unwrap();
        assert_eq!(hit, b"v");
        assert!(near.get(&Named::new("", "k", &["a"])).is_none());
        assert!(near.get(&Named::new("f", "k", &["b", "a"])).is_none());
    }

    static SITE: KeyedTags = KeyedTags::new();
    static OTHER_SITE: KeyedTags = KeyedTags::new();

    #[test]
    fn a_site_whose_tags_follow_from_its_key_finds_only_what_it_kept() {
        let near = trusted(None);
        let by_key = |site| Named::<String>::by_key("f", "k", site);
        let fill = near
            .fill(&Named::new("f", "k", &["t"]), ["e", "t"])
            .unwrap();
        near.keep(fill, section(b"any site"), Expiry::Never, []);
        assert!(near.get(&by_key(&SITE)).is_none(), "kept by no site");
        let fill = near
            .fill(
                &Named::new("f", "k", &["t"]).kept_by(Some(&SITE)),
                ["e", "t"],
            )
            .unwrap();
        near.keep(fill, section(b"this site"), Expiry::Never, []);
        assert_eq!(near.get(&by_key(&SITE)).unwrap(), b"this site");
        assert!(near.get(&by_key(&OTHER_SITE)).is_none(), "another site");
        assert!(near
            .get(&Named::<String>::by_key("g", "k", &SITE))
            .is_none());
        assert!(
            near.get(&Named::new("f", "k", &["t"])).is_some(),
            "named with its tags, whoever kept it"
        );
        assert!(near.get(&Named::new("f", "k", &["u"])).is_none());
    }

    #[test]
    fn a_read_with_other_tags_replaces_the_entry_of_the_same_key() {
        let near = trusted(None);
        for tag in ["t", "u"] {
            let fill = near.fill(&Named::new("", "k", &[tag]), ["e", tag]).unwrap();
            near.keep(fill, section(tag.as_bytes()), Expiry::Never, []);
        }
        assert_eq!(near.len(), 1);
        assert!(near.get(&Named::new("", "k", &["t"])).is_none());
        assert_eq!(near.get(&Named::new("", "k", &["u"])).unwrap(), b"u");
    }

    #[test]
    fn an_entry_this_thread_found_last_ends_like_any_other_and_only_in_its_cache() {
        let near = trusted(None);
        let named = Named::new("", "k", &["t"]);
        let fill = near.fill(&named, ["e", "t"]).unwrap();
        near.keep(fill, section(b"v"), Expiry::Never, []);
        assert!(near.get(&named).is_some(), "found in the map, remembered");
        assert!(near.get(&named).is_some(), "found again");
        assert!(trusted(None).get(&named).is_none(), "another near cache");
        assert!(
            near.get(&Named::new("", "k", &["u"])).is_none(),
            "other tags"
        );
        near.watches().changed(["t"]);
        assert!(near.get(&named).is_none(), "a change ends it");

        let fill = near.fill(&named, ["e", "t"]).unwrap();
        near.keep(fill, section(b"w"), Expiry::Never, []);
        assert_eq!(near.get(&named).unwrap(), b"w");
        near.distrust();
        assert!(near.get(&named).is_none(), "distrust ends it");
    }

    #[test]
    fn an_evicted_entry_this_thread_found_last_is_freed() {
        let near = trusted(None);
        let value = Arc::new(());
        let named = Named::new("", "kept", &[] as &[&str]);
        let fill = near.fill(&named, ["kept"]).unwrap();
        let decoded: Box<dyn Any + Send + Sync> = Box::new(Arc::clone(&value));
        near.keep(fill, NearValue::Decoded(decoded), Expiry::Never, []);
        assert!(near.get(&named).is_some());
        assert_eq!(Arc::strong_count(&value), 2, "kept");
        // What eviction does to it: the map lets it go, and no thread is reading it.
        near.entries.remove(&named.hash());
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "the evicted value is still held"
        );
        assert!(near.get(&named).is_none());
    }

    /// A value whose drop marks it dead before its memory goes back.
    struct Canary {
        alive: std::sync::atomic::AtomicBool,
        number: u64,
    }

    impl Drop for Canary {
        fn drop(&mut self) {
            self.alive.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn threads_reading_entries_they_found_last_never_see_one_freed_under_them() {
        let near = Arc::new(trusted(None));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keep = |near: &NearCache, number: u64| {
            let named = Named::new("", "hot", &["t"]);
            let fill = near.fill(&named, ["e", "t"]).unwrap();
            let canary: Box<dyn Any + Send + Sync> = Box::new(Canary {
                alive: true.into(),
                number,
            });
            near.keep(fill, NearValue::Decoded(canary), Expiry::Never, []);
        };
        keep(&near, 0);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (near, stop) = (Arc::clone(&near), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let named = Named::new("", "hot", &["t"]);
                    let mut answered = 0_u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let read = near.answer(&named, |kept| match kept.value() {
                            NearValue::Decoded(value) => {
                                let canary = value.downcast_ref::<Canary>()?;
                                assert!(
                                    canary.alive.load(std::sync::atomic::Ordering::SeqCst),
                                    "read a value after its drop"
                                );
                                Some(canary.number)
                            }
                            NearValue::Section(_) => None,
                        });
                        answered += u64::from(read.is_some());
                    }
                    answered
                })
            })
            .collect();
        // Replace, evict, change and distrust the entry under the readers, over and over.
        for round in 1..=20_000_u64 {
            match round % 4 {
                0 => near.watches().changed(["t"]),
                1 => {
                    near.entries.clear();
                }
                2 => {
                    near.distrust();
                    near.trust();
                }
                _ => {}
            }
            keep(&near, round);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let answered: u64 = readers
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .sum();
        assert!(answered > 0, "the readers were answered");
    }

    #[test]
    fn a_change_announced_during_the_read_drops_its_reply() {
        let near = trusted(None);
        let named = Named::new("", "k", &[] as &[&str]);
        let fill = near.fill(&named, ["e", "t"]).unwrap();
        near.watches().changed(["t"]);
        near.keep(fill, section(b"old"), Expiry::Never, []);
        assert!(near.get(&named).is_none());
    }

    #[test]
    fn a_change_after_the_fill_ends_the_hit() {
        let near = trusted(None);
        let named = Named::new("", "k", &[] as &[&str]);
        let fill = near.fill(&named, ["e", "t"]).unwrap();
        near.keep(fill, section(b"v"), Expiry::Never, []);
        assert!(near.get(&named).is_some());
        near.watches().changed(["e"]);
        assert!(near.get(&named).is_none());
    }

    #[test]
    fn nothing_is_kept_or_served_without_trust() {
        let near = NearCache::new(10, None);
        let named = Named::new("", "k", &[] as &[&str]);
        assert!(near.fill(&named, ["e"]).is_none());
        near.trust();
        let fill = near.fill(&named, ["e"]).unwrap();
        near.distrust();
        near.keep(fill, section(b"v"), Expiry::Never, []);
        assert!(near.get(&named).is_none());
    }

    #[test]
    fn an_entry_lives_no_longer_than_its_keys_or_the_maximum_age() {
        let near = trusted(Some(Duration::from_secs(60)));
        let named = Named::new("", "k", &[] as &[&str]);
        let fill = near.fill(&named, ["e"]).unwrap();
        near.keep(fill, section(b"v"), Expiry::After(Duration::ZERO), []);
        assert!(near.get(&named).is_none(), "an expired read is not kept");
        let fill = near.fill(&named, ["e"]).unwrap();
        near.keep(fill, section(b"v"), Expiry::Unknown, []);
        assert!(
            near.get(&named).is_none(),
            "a read of unknown expiry is not kept"
        );
        let near = trusted(Some(Duration::from_nanos(1)));
        let fill = near.fill(&named, ["e"]).unwrap();
        near.keep(fill, section(b"v"), Expiry::Never, []);
        std::thread::sleep(Duration::from_millis(1));
        assert!(near.get(&named).is_none(), "past its maximum age");
    }

    #[test]
    fn an_entry_living_over_a_second_is_not_answered_past_its_deadline() {
        let max_age = Duration::from_millis(1_200);
        let near = trusted(Some(max_age));
        let named = Named::new("", "k", &[] as &[&str]);
        let fill = near.fill(&named, ["e"]).unwrap();
        let deadline = fill.sent + max_age;
        near.keep(fill, section(b"v"), Expiry::Never, []);
        // Checked on the coarse clock until the deadline's last second, then on the precise one,
        // read all along from 50 ms before it.
        loop {
            let asked = Instant::now();
            let answered = near.get(&named).is_some();
            if asked >= deadline {
                assert!(
                    !answered,
                    "answered {:?} past its deadline",
                    asked - deadline
                );
                break;
            }
            assert!(
                answered || Instant::now() >= deadline,
                "dropped before its deadline"
            );
            if asked + Duration::from_millis(50) < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn expiries_combine_to_the_earliest() {
        let second = Expiry::After(Duration::from_secs(1));
        assert_eq!(Expiry::Never.min(second), second);
        assert_eq!(second.min(Expiry::After(Duration::from_secs(2))), second);
        assert_eq!(Expiry::Unknown.min(Expiry::Never), Expiry::Unknown);
    }

    #[test]
    fn the_bound_holds() {
        let near = trusted(None);
        for n in 0..1000 {
            let key = n.to_string();
            let named = Named::new("", &key, &[] as &[&str]);
            let fill = near.fill(&named, [key.as_str()]).unwrap();
            near.keep(fill, section(b"v"), Expiry::Never, []);
        }
        assert!(near.len() <= 100, "{}", near.len());
    }
}
