//! Which Redis keys the near cache trusts, and for how long.
//!
//! Every near entry holds a [`Watch`] on each key its value depends on (the entry key and each
//! tag key). A watch starts live and dies when that key is announced changed: by Redis (an
//! invalidation message), by this process's own write, or because the connection that carries
//! the messages went down. A dead watch never comes back; the key gets a new watch on its next
//! read. A watch is taken **before** the read it protects is sent, so a change announced while
//! the read is in flight kills it, and the read's reply is then not kept (the race a fill must
//! not lose, `NEAR-CACHE.md` §1, whatever the order of replies and messages).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Instant;

use crate::format::Version;

/// A key is still as it was when it was watched, as far as this process knows.
#[derive(Debug)]
pub(crate) struct Watch {
    live: AtomicBool,
    /// For a tag key: the version a read found while the watch lived (the tag's version as
    /// far as this process knows, while the watch lives and the tag has not expired).
    version: OnceLock<Version>,
    /// Until when (`clock::now_ms`) the tag surely had not expired, as the reads that learned
    /// its version could tell (`u64::MAX`: it never expires; 0: not learned). Expiry is not
    /// always announced at once (and never by the in-memory backend), so a version is not
    /// used past it: an entry stamped with a version of a tag that has since expired would
    /// only miss, and the write would be lost.
    known_until: AtomicU64,
}

impl Watch {
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// A read made under this watch found the key (a tag) at `version`, and the key would not
    /// expire before `until` (`None`: never).
    pub(crate) fn learn(&self, version: Version, until: Option<Instant>) {
        let _ = self.version.set(version);
        let until = until.map_or(u64::MAX, crate::clock::ms_at);
        self.known_until.fetch_max(until, Ordering::AcqRel);
    }

    /// The version learned, while it may be used at `now` (`clock::now_ms`).
    fn known_version(&self, now: u64) -> Option<Version> {
        if !self.is_live() {
            return None;
        }
        let version = *self.version.get()?;
        let until = self.known_until.load(Ordering::Acquire);
        (until == u64::MAX || now < until).then_some(version)
    }

    fn end(&self) {
        self.live.store(false, Ordering::Release);
    }
}

/// The live watches, by Redis key, and whether changes are being announced at all.
#[derive(Default)]
pub(crate) struct Watches {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// False until tracking is set up, and again from the moment it may have lost a message.
    trusted: bool,
    /// Hashed with foldhash, as the known-tags table: a `set` looks up each of its tags here.
    by_key: HashMap<Box<[u8]>, Weak<Watch>, foldhash::fast::RandomState>,
    /// When `by_key` is to be swept of watches nobody holds any more.
    sweep_at: usize,
}

/// Below this many keys, dead weak references are not worth sweeping.
const MIN_SWEEP: usize = 1024;

impl Watches {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Live watches on `keys` (shared with earlier readers of the same keys); `None` while
    /// changes are not being announced.
    pub(crate) fn watch<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Option<Vec<Arc<Watch>>> {
        let mut registry = self.registry();
        if !registry.trusted {
            return None;
        }
        let watches = keys
            .into_iter()
            .map(|key| {
                let key = key.as_bytes();
                if let Some(watch) = registry.by_key.get(key).and_then(Weak::upgrade) {
                    return watch;
                }
                let watch = Arc::new(Watch {
                    live: AtomicBool::new(true),
                    version: OnceLock::new(),
                    known_until: AtomicU64::new(0),
                });
                registry
                    .by_key
                    .insert(Box::from(key), Arc::downgrade(&watch));
                watch
            })
            .collect();
        registry.sweep();
        Some(watches)
    }

    /// The version of every tag of `tags`, when each is known from a read whose watch still
    /// lives and that the tag's lifetime has not passed; `None` when any is not.
    pub(crate) fn versions<'k>(
        &self,
        tags: impl IntoIterator<Item = &'k str>,
    ) -> Option<Vec<Version>> {
        self.versions_at(tags, crate::clock::now_ms())
    }

    /// [`Watches::versions`] at `now` (`clock::now_ms`).
    fn versions_at<'k>(
        &self,
        tags: impl IntoIterator<Item = &'k str>,
        now: u64,
    ) -> Option<Vec<Version>> {
        let registry = self.registry();
        if !registry.trusted {
            return None;
        }
        tags.into_iter()
            .map(|tag| {
                registry
                    .by_key
                    .get(tag.as_bytes())?
                    .upgrade()?
                    .known_version(now)
            })
            .collect()
    }

    /// `keys` changed: every watch on them dies.
    pub(crate) fn changed<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) {
        let mut registry = self.registry();
        for key in keys {
            if let Some(watch) = registry.by_key.remove(key.as_ref()) {
                if let Some(watch) = watch.upgrade() {
                    watch.end();
                }
            }
        }
    }

    /// Changes may have gone unannounced (a lost tracking connection, a flushed database):
    /// every watch dies, and no new one is given until [`Watches::trust`].
    pub(crate) fn distrust(&self) {
        let mut registry = self.registry();
        registry.trusted = false;
        registry.end_all();
    }

    /// Every change from now on is announced. Watches still alive from before are ended
    /// first: a message may have been lost in between.
    pub(crate) fn trust(&self) {
        let mut registry = self.registry();
        registry.end_all();
        registry.trusted = true;
    }

    /// Every key changed (`FLUSHALL`, `FLUSHDB`), while tracking goes on.
    pub(crate) fn changed_all(&self) {
        self.registry().end_all();
    }

    /// True when one of `keys` has a watch someone holds (a message naming it would end it).
    #[cfg(feature = "simulation")]
    pub(crate) fn watching(&self, keys: &[&[u8]]) -> bool {
        let registry = self.registry();
        keys.iter().any(|key| {
            registry
                .by_key
                .get(*key)
                .is_some_and(|watch| watch.strong_count() > 0)
        })
    }

    pub(crate) fn is_trusted(&self) -> bool {
        self.registry().trusted
    }
}

impl Registry {
    fn end_all(&mut self) {
        for watch in self.by_key.drain().filter_map(|(_, watch)| watch.upgrade()) {
            watch.end();
        }
    }

    /// Forgets keys whose watches nobody holds (their near entries were evicted or replaced).
    fn sweep(&mut self) {
        if self.by_key.len() < self.sweep_at.max(MIN_SWEEP) {
            return;
        }
        self.by_key.retain(|_, watch| watch.strong_count() > 0);
        self.sweep_at = self.by_key.len() * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn trusted() -> Watches {
        let watches = Watches::default();
        watches.trust();
        watches
    }

    #[test]
    fn no_watch_is_given_before_trust_or_after_distrust() {
        let watches = Watches::default();
        assert!(watches.watch(["k"]).is_none());
        watches.trust();
        let held = watches.watch(["k"]).unwrap();
        watches.distrust();
        assert!(!held[0].is_live());
        assert!(watches.watch(["k"]).is_none());
    }

    #[test]
    fn a_change_ends_every_watch_on_the_key_and_only_those() {
        let watches = trusted();
        let first = watches.watch(["a", "b"]).unwrap();
        let second = watches.watch(["a"]).unwrap();
        assert!(Arc::ptr_eq(&first[0], &second[0]));
        watches.changed([b"a"]);
        assert!(!first[0].is_live() && !second[0].is_live());
        assert!(first[1].is_live());
        let renewed = watches.watch(["a"]).unwrap();
        assert!(
            renewed[0].is_live(),
            "a key read after its change is watched afresh"
        );
    }

    #[test]
    fn a_tag_version_is_not_used_past_the_lifetime_its_read_saw() {
        let watches = Watches::default();
        watches.trust();
        let held = watches.watch(["t"]).unwrap();
        let expiry = Instant::now() + Duration::from_secs(40);
        held[0].learn(Version::from_u64(7), Some(expiry));
        // Time is virtual here: the millisecond the read saw the tag expire at, and before.
        let expires = crate::clock::ms_at(expiry);
        let seven = Some(vec![Version::from_u64(7)]);
        assert_eq!(watches.versions_at(["t"], expires - 1), seven);
        assert_eq!(
            watches.versions_at(["t"], expires),
            None,
            "the tag may have expired"
        );
        held[0].learn(Version::from_u64(7), None);
        assert_eq!(
            watches.versions_at(["t"], expires),
            seven,
            "a later read saw it without expiry"
        );
    }

    #[test]
    fn a_tag_version_is_known_while_its_watch_lives() {
        let watches = trusted();
        let held = watches.watch(["t", "u"]).unwrap();
        assert_eq!(watches.versions(["t"]), None, "not learned yet");
        held[0].learn(Version::from_u64(7), None);
        held[1].learn(Version::from_u64(8), None);
        assert_eq!(
            watches.versions(["t", "u"]),
            Some(vec![Version::from_u64(7), Version::from_u64(8)])
        );
        watches.changed(["t"]);
        assert_eq!(watches.versions(["t", "u"]), None);
        assert_eq!(watches.versions(["u"]), Some(vec![Version::from_u64(8)]));
    }

    #[test]
    fn trust_again_ends_watches_taken_before() {
        let watches = trusted();
        let held = watches.watch(["k"]).unwrap();
        watches.trust();
        assert!(!held[0].is_live());
    }

    #[test]
    fn keys_nobody_watches_are_swept() {
        let watches = trusted();
        for n in 0..(MIN_SWEEP * 3) {
            drop(watches.watch([format!("k{n}").as_str()]));
        }
        assert!(watches.registry().by_key.len() <= MIN_SWEEP);
    }
}
