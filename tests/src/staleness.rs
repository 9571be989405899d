//! Staleness made visible: data modelled as version numbers, and an audit of every answer.
//!
//! A writer bumps an item's version and then invalidates the item's tag; once the invalidation
//! reported success, the new version is the item's *floor*: no call that starts afterwards may
//! answer with an older version. [`Audit`] checks every answer against the floor read when its
//! call started.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a writer retries an invalidation before the test fails.
const GIVE_UP: Duration = Duration::from_secs(20);

/// The tag of one item.
pub fn tag(item: u64) -> String {
    format!("item:{item}")
}

/// What a decorated function returns: the item (so a value served for the wrong item shows)
/// and the version it was computed from.
pub type Reading = (u64, u64);

/// Items whose data has a version, and the floor of each (see the [module](self) docs).
pub struct Data {
    versions: Vec<AtomicU64>,
    floors: Vec<AtomicU64>,
}

impl Data {
    /// `items` items, numbered from 0, all at version 1.
    pub fn new(items: u64) -> Self {
        Self {
            versions: (0..items).map(|_| AtomicU64::new(1)).collect(),
            floors: (0..items).map(|_| AtomicU64::new(1)).collect(),
        }
    }

    /// How many items there are.
    pub fn items(&self) -> u64 {
        self.versions.len() as u64
    }

    /// What a computation of `item` returns now.
    pub fn read(&self, item: u64) -> Reading {
        (item, self.versions[item as usize].load(Ordering::SeqCst))
    }

    /// The oldest version a call starting now may return.
    pub fn floor(&self, item: u64) -> u64 {
        self.floors[item as usize].load(Ordering::SeqCst)
    }

    /// Changes `item`, then runs `invalidate` until it reports success (the application's
    /// retry); the new version becomes the floor only then.
    pub fn change(&self, item: u64, mut invalidate: impl FnMut() -> bool) {
        let version = self.bump(item);
        let started = Instant::now();
        while !invalidate() {
            assert!(
                started.elapsed() < GIVE_UP,
                "the invalidation never succeeded"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.publish(item, version);
    }

    /// Async twin of [`Data::change`].
    pub async fn change_async<F: Future<Output = bool>>(
        &self,
        item: u64,
        mut invalidate: impl FnMut() -> F,
    ) {
        let version = self.bump(item);
        let started = Instant::now();
        while !invalidate().await {
            assert!(
                started.elapsed() < GIVE_UP,
                "the invalidation never succeeded"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.publish(item, version);
    }

    /// Changes `item` and tries to invalidate once; the floor moves only if that succeeded.
    pub fn change_once(&self, item: u64, invalidate: impl FnOnce() -> bool) -> bool {
        let version = self.bump(item);
        let invalidated = invalidate();
        if invalidated {
            self.publish(item, version);
        }
        invalidated
    }

    /// Changes every item and tries once to invalidate them all (`invalidate_all`, or a
    /// function's `invalidate_all_<fn>`); the floors move only if that succeeded.
    pub fn change_all_once(&self, invalidate: impl FnOnce() -> bool) -> bool {
        let versions: Vec<u64> = (0..self.items()).map(|item| self.bump(item)).collect();
        let invalidated = invalidate();
        if invalidated {
            for (item, version) in (0..).zip(versions) {
                self.publish(item, version);
            }
        }
        invalidated
    }

    fn bump(&self, item: u64) -> u64 {
        self.versions[item as usize].fetch_add(1, Ordering::SeqCst) + 1
    }

    fn publish(&self, item: u64, version: u64) {
        self.floors[item as usize].fetch_max(version, Ordering::SeqCst);
    }
}

/// Every call's answer, checked against the floor read when the call started.
#[derive(Default)]
pub struct Audit {
    calls: AtomicU64,
    wrong: Mutex<Vec<String>>,
}

impl Audit {
    /// Checks one call of `item` that started with `floor` and returned `got`.
    pub fn check(&self, item: u64, floor: u64, got: Reading) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (got_item, got_version) = got;
        if got_item != item || got_version < floor {
            let mut wrong = self.wrong.lock().unwrap_or_else(PoisonError::into_inner);
            wrong.push(format!(
                "item {item}: got {got:?}, but version {floor} was invalidated before the call started"
            ));
        }
    }

    /// Calls checked so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Panics with the first wrong answers, if any.
    pub fn assert_all_fresh(&self) {
        let wrong = self.wrong.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            wrong.is_empty(),
            "{} of {} calls returned stale or wrong values, e.g.:\n{}",
            wrong.len(),
            self.calls(),
            wrong
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A cheap deterministic endless sequence of items below `count` for worker `seed` (no `rand`
/// needed).
pub fn items(seed: u64, count: u64) -> impl Iterator<Item = u64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % count
    })
}
