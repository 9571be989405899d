//! The "stale set" race, step by step: a computation reads the data, an invalidation lands, the
//! computation returns the old value. That value may be returned to its own caller, but it must
//! never be served afterwards.

use std::sync::OnceLock;
use std::thread;

use rtc::TaggedCache;
use rtc_tests::gates::wait_until;
use rtc_tests::staleness::{tag, Data, Reading};
use rtc_tests::statics::{forever, install};
use rtc_tests::RedisServer;

use crate::support::{builder_on, cache_on, runtime, Gate};

static STALE: OnceLock<TaggedCache> = OnceLock::new();
static STALE_ASYNC: OnceLock<TaggedCache> = OnceLock::new();
static REFRESHED: OnceLock<TaggedCache> = OnceLock::new();
static ONE_ENTRY: OnceLock<TaggedCache> = OnceLock::new();
static SHARED: OnceLock<TaggedCache> = OnceLock::new();
static SUCCESSOR: OnceLock<TaggedCache> = OnceLock::new();
static SHORT_SUCCESSOR: OnceLock<TaggedCache> = OnceLock::new();

/// The data, and a gate that holds the next computation between its read and its return.
struct Source {
    data: Data,
    gate: Gate,
}

impl Source {
    fn new() -> Self {
        Self {
            data: Data::new(8),
            gate: Gate::default(),
        }
    }

    fn compute(&self, item: u64) -> Reading {
        let reading = self.data.read(item);
        self.gate.pass();
        reading
    }

    async fn compute_async(&self, item: u64) -> Reading {
        let reading = self.data.read(item);
        self.gate.pass_async().await;
        reading
    }

    /// The next computation will stop after reading the data.
    fn hold_next(&self) {
        self.gate.arm();
    }

    /// Runs `during` once the held computation has read the data, then lets it finish.
    fn while_held(&self, during: impl FnOnce()) {
        self.gate.wait_entered();
        during();
        self.gate.release();
    }
}

#[rtc::cached(tags = [tag(item)], cache = STALE.get().unwrap(), skip(source))]
fn stale_load(source: &Source, item: u64) -> Reading {
    source.compute(item)
}

#[rtc::cached(tags = [tag(item)], cache = STALE_ASYNC.get().unwrap(), skip(source))]
async fn stale_load_async(source: &Source, item: u64) -> Reading {
    source.compute_async(item).await
}

/// What an invalidation covers, the item it is tried on, and how to run it for that item.
type Invalidation = (&'static str, u64, Box<dyn Fn(u64) -> bool>);

/// Ways to invalidate an item of `stale_load`, each with an item of its own.
fn invalidations(cache: &'static TaggedCache) -> Vec<Invalidation> {
    vec![
        (
            "the item's tag",
            0,
            Box::new(|item| cache.invalidate([tag(item)])),
        ),
        (
            "every entry of the namespace",
            1,
            Box::new(|_| cache.invalidate_all()),
        ),
        (
            "every entry of the function",
            2,
            Box::new(|_| invalidate_all_stale_load()),
        ),
    ]
}

#[test]
fn a_value_computed_while_its_tag_was_invalidated_is_never_served() {
    let server = RedisServer::start();
    let cache = install(&STALE, cache_on(&server, "stale-set"));
    let source = Source::new();
    for warm in [false, true] {
        for (what, item, invalidate) in invalidations(cache) {
            let item = item + if warm { 4 } else { 0 };
            if warm {
                // The tag exists and the entry misses: the computation observes a version.
                stale_load(&source, item);
                cache.invalidate([tag(item)]);
            }
            let (_, before) = source.data.read(item);
            source.hold_next();
            let old = thread::scope(|scope| {
                let old = scope.spawn(|| stale_load(&source, item));
                source.while_held(|| source.data.change(item, || invalidate(item)));
                old.join().unwrap()
            });
            assert_eq!(
                old,
                (item, before),
                "the call that started first answers as it read"
            );
            assert_eq!(
                stale_load(&source, item),
                source.data.read(item),
                "invalidating {what} (tag existed: {warm}) during the computation"
            );
        }
    }
}

#[test]
fn a_value_computed_by_a_task_while_its_tag_was_invalidated_is_never_served() {
    let server = RedisServer::start();
    let cache = install(&STALE_ASYNC, cache_on(&server, "stale-set-async"));
    let source = forever(Source::new());
    let runtime = runtime();
    for item in 0..2 {
        if item == 1 {
            runtime.block_on(stale_load_async(source, item));
            cache.invalidate([tag(item)]);
        }
        source.hold_next();
        let old = runtime.spawn(stale_load_async(source, item));
        source.while_held(|| source.data.change(item, || cache.invalidate([tag(item)])));
        assert_eq!(runtime.block_on(old).unwrap(), (item, 1));
        assert_eq!(
            runtime.block_on(stale_load_async(source, item)),
            (item, 2),
            "item {item}: the value computed before the invalidation is not served"
        );
    }
}

#[rtc::cached(tags = [tag(item)], cache = REFRESHED.get().unwrap(), skip(source))]
fn refreshed_load(source: &Source, item: u64) -> Reading {
    source.compute(item)
}

#[test]
fn a_refresh_that_overlaps_an_invalidation_does_not_store_its_stale_value() {
    let server = RedisServer::start();
    let cache = install(&REFRESHED, cache_on(&server, "stale-refresh"));
    let source = Source::new();
    assert_eq!(refreshed_load(&source, 0), (0, 1));
    source.hold_next();
    let refreshed = thread::scope(|scope| {
        let refreshed = scope.spawn(|| refresh_refreshed_load(&source, 0));
        source.while_held(|| source.data.change(0, || cache.invalidate([tag(0)])));
        refreshed.join().unwrap()
    });
    assert_eq!(refreshed, (0, 1));
    assert_eq!(refreshed_load(&source, 0), (0, 2));
}

#[rtc::cached(tags = [tag(item)], cache = ONE_ENTRY.get().unwrap(), skip(source))]
fn one_entry_load(source: &Source, item: u64) -> Reading {
    source.compute(item)
}

#[test]
fn invalidating_one_entry_during_its_computation_is_not_overwritten() {
    let server = RedisServer::start();
    install(&ONE_ENTRY, cache_on(&server, "stale-one-entry"));
    let source = Source::new();
    source.hold_next();
    thread::scope(|scope| {
        let old = scope.spawn(|| one_entry_load(&source, 0));
        source.while_held(|| {
            source.data.change(0, || {
                invalidate_one_entry_load(0);
                true
            })
        });
        assert_eq!(old.join().unwrap(), (0, 1));
    });
    assert_eq!(
        one_entry_load(&source, 0),
        (0, 2),
        "the value computed before invalidate_one_entry_load returned is served"
    );
}

#[rtc::cached(tags = [tag(item)], cache = SUCCESSOR.get().unwrap(), skip(source))]
fn successor_load(source: &Source, item: u64) -> Reading {
    source.compute(item)
}

/// A computation that read before `invalidate_<fn>` (A), and one that started after it and
/// stored its value over the tombstone (B): A's value must not replace B's (the successor gap,
/// found by the simulator).
#[test]
fn a_value_from_before_a_delete_does_not_replace_the_one_computed_after_it() {
    let server = RedisServer::start();
    install(&SUCCESSOR, cache_on(&server, "stale-successor"));
    let source = Source::new();
    source.hold_next();
    thread::scope(|scope| {
        let old = scope.spawn(|| successor_load(&source, 0));
        source.while_held(|| {
            source.data.change(0, || {
                invalidate_successor_load(0);
                true
            });
            assert_eq!(
                successor_load(&source, 0),
                (0, 2),
                "B computes over the tombstone"
            );
        });
        assert_eq!(old.join().unwrap(), (0, 1));
    });
    assert_eq!(
        successor_load(&source, 0),
        (0, 2),
        "the value computed before invalidate_successor_load returned replaced the one after it"
    );
}

#[rtc::cached(tags = [tag(item)], cache = SHORT_SUCCESSOR.get().unwrap(), skip(source))]
fn short_successor_load(source: &Source, item: u64) -> Reading {
    source.compute(item)
}

/// As above, with B's value past its (short) lifetime by the time A stores: the tombstone's
/// guard outlives B's value (its key lives on, stale), and B's value is not fresh any longer.
#[test]
fn a_delete_guards_against_older_values_after_the_value_written_over_it_expires() {
    let server = RedisServer::start();
    let lifetime = std::time::Duration::from_millis(300);
    let cache = builder_on(&server, "stale-short-successor")
        .default_lifetime(lifetime)
        .build()
        .expect("valid settings");
    install(&SHORT_SUCCESSOR, cache);
    let source = Source::new();
    source.hold_next();
    thread::scope(|scope| {
        let old = scope.spawn(|| short_successor_load(&source, 0));
        source.while_held(|| {
            source.data.change(0, || {
                invalidate_short_successor_load(0);
                true
            });
            assert_eq!(short_successor_load(&source, 0), (0, 2));
            // B's value is past its lifetime before A stores (not a timed assertion: the
            // wait only makes sure the lifetime has passed).
            thread::sleep(lifetime * 2);
        });
        assert_eq!(old.join().unwrap(), (0, 1));
    });
    // A changed datum without an invalidation: a fresh entry would hide it, an expired one not.
    source.data.change(0, || true);
    assert_eq!(
        short_successor_load(&source, 0),
        (0, 3),
        "A's older value was stored after B's expired, or B's stayed fresh past its lifetime"
    );
}

/// `get_with` computing (A), then `delete` and a `set` of the same entry: A's value, read
/// before the delete, does not replace the value set after it (the set carries the delete's
/// lineage on; found by the simulator once `set` was in it).
#[test]
fn a_value_from_before_a_delete_does_not_replace_a_value_set_after_it() {
    let server = RedisServer::start();
    let cache = cache_on(&server, "stale-set-after-delete");
    let source = Source::new();
    source.hold_next();
    thread::scope(|scope| {
        let old = scope.spawn(|| cache.get_with("item", [tag(0)], || source.compute(0)));
        source.while_held(|| {
            source.data.change(0, || {
                cache.delete("item", [tag(0)]);
                true
            });
            assert!(cache.set(
                "item",
                &source.data.read(0),
                [tag(0)],
                rtc::Lifetime::Default
            ));
        });
        assert_eq!(old.join().unwrap(), (0, 1));
    });
    assert_eq!(
        cache.get::<Reading>("item", [tag(0)]),
        Ok((0, 2)),
        "the value computed before the delete replaced the one set after it"
    );
}

#[rtc::cached(tags = [tag(item)], lock = true, cache = SHARED.get().unwrap(), skip(source))]
fn shared_load(source: &Source, item: u64) -> Reading {
    source.compute(item)
}

#[test]
fn with_lock_a_call_after_an_invalidation_does_not_share_an_older_computation() {
    let server = RedisServer::start();
    let cache = install(&SHARED, cache_on(&server, "stale-shared"));
    let source = Source::new();
    source.hold_next();
    thread::scope(|scope| {
        let first = scope.spawn(|| shared_load(&source, 0));
        let mut second = None;
        source.while_held(|| {
            source.data.change(0, || cache.invalidate([tag(0)]));
            // Starts after the invalidation returned, while the first computation still runs.
            second = Some(scope.spawn(|| shared_load(&source, 0)));
            wait_until(
                std::time::Duration::from_secs(5),
                "second call waits",
                || cache.stats().lock_waits > 0,
            );
        });
        assert_eq!(first.join().unwrap(), (0, 1));
        assert_eq!(
            second.unwrap().join().unwrap(),
            (0, 2),
            "the second call started after the invalidation returned"
        );
    });
    assert_eq!(shared_load(&source, 0), (0, 2));
}
