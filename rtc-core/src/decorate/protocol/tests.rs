//! Every transition of the protocol, with replies made by hand and a host of the tests' own:
//! no Redis, no cache, no clock. Time is virtual: each test moves it ([`advance`]). The real
//! servers are in the integration tests (`tests/tests/stampede.rs` and the fault suite).

use std::cell::RefCell;

use super::lock::EXPIRY_MARGIN;
use super::*;
use crate::cache::flights::{Flights, Joined};
use crate::decorate::virtual_time::{advance, now};
use crate::engine::{LockAttempt, ReadReply, Ttl};
use crate::error::BackendError;
use crate::format::{self, KeySpace, Version};
use crate::hook::CacheInfo;
use crate::lifetime::Lifetime;

const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// A process as the protocol sees it: its flights and what it counted, alone with its backend
/// (an in-memory one) or sharing it with other processes (Redis).
struct TestHost {
    shared: bool,
    keys: KeySpace,
    flights: Flights,
    counted: RefCell<Vec<Counted>>,
}

impl TestHost {
    fn new(shared: bool) -> Self {
        Self {
            shared,
            keys: KeySpace::new("test"),
            flights: Flights::default(),
            counted: RefCell::new(Vec::new()),
        }
    }

    /// How many times `counted` was counted.
    fn count_of(&self, counted: Counted) -> usize {
        self.counted
            .borrow()
            .iter()
            .filter(|&&c| c == counted)
            .count()
    }

    /// Hits, misses and stale hits.
    fn stats(&self) -> (usize, usize, usize) {
        (
            self.count_of(Counted::Hit),
            self.count_of(Counted::Miss),
            self.count_of(Counted::StaleHit),
        )
    }

    fn lock_waits(&self) -> usize {
        self.count_of(Counted::LockWait(""))
    }
}

impl Host for TestHost {
    fn shared(&self) -> bool {
        self.shared
    }

    fn key_space(&self) -> &KeySpace {
        &self.keys
    }

    fn tag_lifetime(&self) -> Option<Duration> {
        None
    }

    fn entry_lifetime(&self, lifetime: Lifetime) -> Option<Duration> {
        lifetime.resolve(None)
    }

    fn join_flight(&self, entry: &str) -> Joined {
        self.flights.join(entry)
    }

    fn count(&self, counted: Counted) {
        self.counted.borrow_mut().push(counted);
    }
}

/// A process whose backend other processes share: the protocol only asks for round trips.
fn shared_cache() -> TestHost {
    TestHost::new(true)
}

/// A process alone with its backend.
fn memory_cache() -> TestHost {
    TestHost::new(false)
}

fn report() -> Report {
    Report {
        started: now(),
        info: CacheInfo::default(),
        counted: true,
    }
}

fn keys(cache: &TestHost) -> EntryKeys {
    let function = cache.keys.implicit_tag("f");
    EntryKeys::new(&cache.keys, &["k"], ["a"], vec![function])
}

fn locked() -> Mode {
    Mode::Run {
        lock_timeout: Some(LOCK_TIMEOUT),
    }
}

fn versions(keys: &EntryKeys, first: u64) -> Vec<Option<Version>> {
    (0..keys.tags().len() as u64)
        .map(|i| Some(Version::from_u64(first + i)))
        .collect()
}

/// A read of the entry: `value` stamped with `versions` (or nothing), and `versions`.
fn read(keys: &EntryKeys, versions: &[Option<Version>], value: Option<&str>) -> ReadReply {
    let section = value.map(|value| crate::codec::Encoding::default().encode(value).unwrap());
    ReadReply {
        entry: section.map(|section| format::encode(&keys.observe(versions), &section).unwrap()),
        versions: versions.to_vec(),
        ttl: Ttl::Unasked,
        expiry: crate::engine::Expiry::Unknown,
    }
}

fn lock_reply(holder: Option<&[u8]>, ttl_ms: u64, read: ReadReply) -> Received {
    Ok(Reply::Lock(LockAttempt {
        holder: holder.map(<[u8]>::to_vec),
        lock_ttl: Duration::from_millis(ttl_ms),
        read,
    }))
}

/// Advances and checks that the flow sends an operation `is` accepts.
fn sends<V>(
    flow: &mut CallFlow<'_, V, TestHost>,
    reply: Option<Received>,
    is: impl Fn(&Operation<'_>) -> bool,
) {
    assert!(
        matches!(flow.step(now(), reply), Progress::Send),
        "expected an operation"
    );
    let operation = flow.operation().expect("an operation to send");
    assert!(is(&operation), "unexpected operation {operation:?}");
}

fn yields<V: std::fmt::Debug>(
    flow: &mut CallFlow<'_, V, TestHost>,
    reply: Option<Received>,
) -> Yield<V> {
    match flow.step(now(), reply) {
        Progress::Done(output) => output,
        Progress::Send => panic!("unexpected operation {:?}", flow.operation()),
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Yield<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Yield::Cached(value) | Yield::Revalidate(value, _) | Yield::Instead(value) => {
                write!(f, "{}({value:?})", self.name())
            }
            Yield::Compute(limit) => write!(f, "Compute({limit:?})"),
            _ => f.write_str(self.name()),
        }
    }
}

/// A `lock = true` call on a shared cache that missed and asked for the lock.
fn acquiring<'a>(
    cache: &'a TestHost,
    keys: &'a EntryKeys,
    codec: &'a ValueCodec<String>,
) -> CallFlow<'a, String, TestHost> {
    let mut flow = CallFlow::new(
        cache,
        keys,
        codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    sends(&mut flow, None, is_read);
    let miss = read(keys, &versions(keys, 1), None);
    sends(&mut flow, Some(Ok(Reply::Read(miss))), |operation| {
        matches!(operation, Operation::Acquire { baton: None, .. })
    });
    flow
}

fn is_read(operation: &Operation<'_>) -> bool {
    matches!(operation, Operation::Read { .. })
}

#[test]
fn a_fresh_entry_is_returned_without_computing() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    sends(&mut flow, None, is_read);
    let seen = versions(&keys, 1);
    let reply = Ok(Reply::Read(read(&keys, &seen, Some("v"))));
    assert!(matches!(yields(&mut flow, Some(reply)), Yield::Cached(v) if v == "v"));
    assert!(flow.report.info.hit && flow.report.info.lock_full_hit);
    assert_eq!(cache.count_of(Counted::Hit), 1);
}

#[test]
fn a_miss_creates_missing_tags_then_computes_then_stores_stamped_with_what_it_read() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Run { lock_timeout: None };
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        mode,
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    sends(&mut flow, None, is_read);
    let mut seen = versions(&keys, 1);
    seen[1] = None;
    let reply = Ok(Reply::Read(read(&keys, &seen, None)));
    sends(
        &mut flow,
        Some(reply),
        |operation| matches!(operation, Operation::CreateTags { tags, .. } if tags.len() == 1),
    );
    let created = Ok(Reply::Created(vec![Version::from_u64(99)]));
    assert!(matches!(
        yields(&mut flow, Some(created)),
        Yield::Compute(_)
    ));
    flow.computed(Some(b"\"new\"".to_vec()), false);
    sends(&mut flow, None, |operation| match operation {
        Operation::WriteUnlessDeleted { observed, .. } => {
            observed.canonical[1].1 == Some(Version::from_u64(99))
                && observed.canonical[0].1 == seen[0]
        }
        _ => false,
    });
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Done(true)))),
        Yield::Finished
    ));
    assert_eq!(
        (
            cache.count_of(Counted::Miss),
            cache.count_of(Counted::Write)
        ),
        (1, 1)
    );
}

#[test]
fn an_unreachable_backend_means_computing_and_storing_nothing() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    sends(&mut flow, None, is_read);
    // Not even the lock: one process computing alone is all a failing Redis can offer.
    sends(&mut flow, Some(Err(BackendError::Skipped)), |operation| {
        matches!(operation, Operation::Acquire { .. })
    });
    assert!(matches!(
        yields(&mut flow, Some(Err(BackendError::Skipped))),
        Yield::Compute(_)
    ));
    flow.computed(Some(b"\"v\"".to_vec()), false);
    assert!(matches!(yields(&mut flow, None), Yield::Finished));
    assert!(flow.abandon().is_none());
}

#[test]
fn the_lock_holder_computes_stores_releases_and_lands_for_followers() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = acquiring(&cache, &keys, &codec);
    let seen = versions(&keys, 1);
    let miss = || read(&keys, &seen, None);
    let follower = match cache.flights.join(&keys.entry) {
        Joined::Follower(flight) => flight,
        Joined::Leader(_) => panic!("the first caller leads"),
    };
    assert!(matches!(
        yields(&mut flow, Some(lock_reply(None, 5000, miss()))),
        Yield::Compute(_)
    ));
    assert!(flow.report.info.lock_full_miss);
    flow.computed(Some(b"\"v\"".to_vec()), false);
    sends(&mut flow, None, |operation| {
        matches!(operation, Operation::WriteUnlessDeleted { .. })
    });
    sends(&mut flow, Some(Ok(Reply::Done(true))), |operation| {
        matches!(operation, Operation::Release { .. })
    });
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Ok))),
        Yield::Finished
    ));
    let landing = follower.wait(now()).expect("landed");
    assert_eq!(
        landing.value_for(Some(&keys.observe(&seen)), now()),
        Some(&b"\"v\""[..])
    );
}

#[test]
fn a_holder_that_finds_the_value_releases_the_lock_and_returns_it() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    sends(&mut flow, None, is_read);
    let seen = versions(&keys, 1);
    let miss = read(&keys, &seen, None);
    sends(&mut flow, Some(Ok(Reply::Read(miss))), |operation| {
        matches!(operation, Operation::Acquire { .. })
    });
    let hit = read(&keys, &seen, Some("landed meanwhile"));
    sends(&mut flow, Some(lock_reply(None, 5000, hit)), |operation| {
        matches!(operation, Operation::Release { .. })
    });
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Ok))),
        Yield::Cached(v) if v == "landed meanwhile"
    ));
}

#[test]
fn a_waiter_wakes_on_the_holders_token_and_passes_it_on() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = acquiring(&cache, &keys, &codec);
    let seen = versions(&keys, 1);
    let miss = || read(&keys, &seen, None);
    sends(
        &mut flow,
        Some(lock_reply(Some(b"holder"), 1000, miss())),
        |operation| {
            matches!(operation, Operation::WaitForWake { timeout, .. }
                if *timeout == Duration::from_millis(1000) + EXPIRY_MARGIN)
        },
    );
    assert_eq!(cache.lock_waits(), 1);
    let woken = Ok(Reply::Woken(Some(b"holder".to_vec())));
    sends(&mut flow, Some(woken), |operation| {
        matches!(
            operation,
            Operation::Acquire {
                baton: Some(b"holder"),
                ..
            }
        )
    });
    let hit = read(&keys, &seen, Some("v"));
    assert!(matches!(
        yields(&mut flow, Some(lock_reply(Some(b"other"), 1000, hit))),
        Yield::Cached(v) if v == "v"
    ));
    assert!(flow.abandon().is_none(), "a waiter holds no lock");
}

#[test]
fn a_stale_token_leaves_only_what_is_left_of_the_lock_to_wait_for() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = acquiring(&cache, &keys, &codec);
    let seen = versions(&keys, 1);
    let miss = || read(&keys, &seen, None);
    sends(
        &mut flow,
        Some(lock_reply(Some(b"holder"), 300, miss())),
        |_| true,
    );
    advance(Duration::from_millis(120));
    // 120 ms of the lock's 300 are gone: waiting the whole 300 again would block past the
    // lock's expiry.
    let stale = Ok(Reply::Woken(Some(b"an earlier holder".to_vec())));
    sends(&mut flow, Some(stale), |operation| match operation {
        Operation::WaitForWake { timeout, .. } => {
            *timeout == Duration::from_millis(300 - 120) + EXPIRY_MARGIN
        }
        _ => false,
    });
}

#[test]
fn an_expired_lock_is_tried_again_and_a_failed_wait_computes_alone() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = acquiring(&cache, &keys, &codec);
    let seen = versions(&keys, 1);
    let miss = || read(&keys, &seen, None);
    sends(
        &mut flow,
        Some(lock_reply(Some(b"holder"), 10, miss())),
        |_| true,
    );
    sends(&mut flow, Some(Ok(Reply::Woken(None))), |operation| {
        matches!(operation, Operation::Acquire { baton: None, .. })
    });
    sends(
        &mut flow,
        Some(lock_reply(Some(b"next"), 10, miss())),
        |operation| matches!(operation, Operation::WaitForWake { .. }),
    );
    assert!(matches!(
        yields(&mut flow, Some(Err(BackendError::Skipped))),
        Yield::Compute(_)
    ));
    flow.computed(Some(b"\"v\"".to_vec()), false);
    sends(&mut flow, None, |operation| {
        matches!(operation, Operation::WriteUnlessDeleted { .. })
    });
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Done(true)))),
        Yield::Finished
    ));
}

#[test]
fn a_failed_acquire_computes_without_the_lock() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    sends(&mut flow, None, is_read);
    let seen = versions(&keys, 1);
    sends(
        &mut flow,
        Some(Ok(Reply::Read(read(&keys, &seen, None)))),
        |_| true,
    );
    assert!(matches!(
        yields(&mut flow, Some(Err(BackendError::Skipped))),
        Yield::Compute(_)
    ));
    assert!(flow.abandon().is_none());
}

#[test]
fn an_abandoned_holder_hands_its_lock_to_the_driver_once() {
    let cache = shared_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = acquiring(&cache, &keys, &codec);
    let seen = versions(&keys, 1);
    let miss = || read(&keys, &seen, None);
    assert!(matches!(
        yields(&mut flow, Some(lock_reply(None, 5000, miss()))),
        Yield::Compute(_)
    ));
    // The function panicked or the future was dropped here.
    let held = flow.abandon().expect("the holder's lock");
    assert!(matches!(held.release(), Operation::Release { .. }));
    assert!(flow.abandon().is_none());
}

#[test]
fn a_follower_takes_a_landed_value_it_admits_and_otherwise_leads_or_computes() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let seen = versions(&keys, 1);
    let miss = || Ok(Reply::Read(read(&keys, &seen, None)));
    let follow = |flow: &mut CallFlow<'_, String, TestHost>| {
        sends(flow, None, is_read);
        assert!(matches!(yields(flow, Some(miss())), Yield::Follow(..)));
    };

    let leader = cache.flights.join(&keys.entry);
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    follow(&mut flow);
    flow.landed(Some(Landing::new(
        Some(b"\x01\"shared\"".to_vec()),
        Some(keys.observe(&seen)),
    )));
    assert!(matches!(yields(&mut flow, None), Yield::Cached(v) if v == "shared"));

    // A value stamped before an invalidation this follower saw is not taken: it goes round
    // again, and leads when nobody else does.
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    follow(&mut flow);
    flow.landed(Some(Landing::new(
        Some(b"\x01\"old\"".to_vec()),
        Some(keys.observe(&versions(&keys, 50))),
    )));
    drop(leader);
    sends(&mut flow, None, is_read);

    // A follower whose deadline passed computes by itself.
    let _leader = cache.flights.join(&keys.entry);
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        locked(),
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    follow(&mut flow);
    flow.landed(None);
    assert!(matches!(yields(&mut flow, None), Yield::Compute(_)));
}

/// When the backend cannot be read, neither the leader's value nor the followers' reading has
/// versions: a follower takes the value only if the leader's computation started no earlier
/// than the follower's call, since one that started before may predate an invalidation that
/// returned before the follower began (the simulator's seed 73,025).
#[test]
fn without_versions_a_follower_takes_only_a_computation_that_started_after_it() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let call = || {
        CallFlow::new(
            &cache,
            &keys,
            &codec,
            locked(),
            Lifetime::Default,
            Windows::default(),
            report(),
        )
    };
    // Steps a call whose every read fails until it yields.
    let unreadable = |flow: &mut CallFlow<'_, String, TestHost>| {
        let mut reply = None;
        loop {
            match flow.step(now(), reply.take()) {
                Progress::Done(output) => return output,
                Progress::Send => reply = Some(Err(BackendError::Skipped)),
            }
        }
    };
    // Started before the leader computes.
    let mut early = call();
    advance(Duration::from_millis(1));
    let mut leader = call();
    assert!(matches!(unreadable(&mut leader), Yield::Compute(_)));
    assert!(matches!(unreadable(&mut early), Yield::Follow(..)));
    // Started after the leader began computing (an invalidation may have returned between).
    advance(Duration::from_millis(1));
    let mut late = call();
    let Yield::Follow(flight, _) = unreadable(&mut late) else {
        panic!("the late caller follows");
    };
    leader.computed(Some(b"\x01\"v\"".to_vec()), false);
    assert!(matches!(unreadable(&mut leader), Yield::Finished));
    let landing = flight.wait(now()).expect("the leader landed");
    early.landed(Some(landing.clone()));
    assert!(matches!(yields(&mut early, None), Yield::Cached(v) if v == "v"));
    late.landed(Some(landing));
    assert!(
        !matches!(yields_or_sends(&mut late), Some(Yield::Cached(_))),
        "a follower took a value computed before its call started"
    );
}

/// The next step without a reply: what it yields, or `None` when it sends an operation.
fn yields_or_sends<V>(flow: &mut CallFlow<'_, V, TestHost>) -> Option<Yield<V>> {
    match flow.step(now(), None) {
        Progress::Done(output) => Some(output),
        Progress::Send => None,
    }
}

/// A follower that saw a tag without a version cannot judge its leader's stamp (the tag may
/// have been invalidated, then lost): it reads the entry again, and takes what it finds only if
/// the stamp matches the versions now. The simulator found the stale read this prevents
/// (`rtc-core/tests/simulation.rs`, seed 262 before the fix).
#[test]
fn a_follower_that_saw_a_tag_without_version_reads_the_entry_again() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let lost = vec![None; keys.tags().len()];
    let _leader = cache.flights.join(&keys.entry);
    let follower = || {
        let mut flow = CallFlow::new(
            &cache,
            &keys,
            &codec,
            locked(),
            Lifetime::Default,
            Windows::default(),
            report(),
        );
        sends(&mut flow, None, is_read);
        let miss = Ok(Reply::Read(read(&keys, &lost, None)));
        assert!(matches!(yields(&mut flow, Some(miss)), Yield::Follow(..)));
        // The leader read versions 1.. before an invalidation; the server lost them since.
        flow.landed(Some(Landing::new(
            Some(b"\x01\"old\"".to_vec()),
            Some(keys.observe(&versions(&keys, 1))),
        )));
        sends(&mut flow, None, is_read);
        flow
    };

    // The entry it stored is stamped with versions that are no longer current: a miss, and
    // the follower goes round again (here it leads: the flight is still the old leader's).
    let mut flow = follower();
    let invalidated = read(&keys, &versions(&keys, 7), None);
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Read(invalidated)))),
        Yield::Follow(..)
    ));

    // The versions are those the leader stamped its value with: it is taken.
    let mut flow = follower();
    let current = read(&keys, &versions(&keys, 1), Some("new"));
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Read(current)))),
        Yield::Cached(v) if v == "new"
    ));
}

#[test]
fn a_refresh_computes_even_on_a_hit() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        Mode::Refresh,
        Lifetime::Default,
        Windows::default(),
        report(),
    );
    sends(&mut flow, None, is_read);
    let seen = versions(&keys, 1);
    let hit = Ok(Reply::Read(read(&keys, &seen, Some("v"))));
    assert!(matches!(yields(&mut flow, Some(hit)), Yield::Compute(_)));
}

/// A call with stale windows, and no lifetime of its own.
fn with_windows<'a>(
    cache: &'a TestHost,
    keys: &'a EntryKeys,
    codec: &'a ValueCodec<String>,
    mode: Mode,
    windows: Windows,
) -> CallFlow<'a, String, TestHost> {
    CallFlow::new(
        cache,
        keys,
        codec,
        mode,
        Lifetime::Default,
        windows,
        report(),
    )
}

/// Stale windows of a call: `stale_while_revalidate` and `stale_if_error` (seconds).
fn windows(while_revalidate: u64, if_error: u64) -> Windows {
    Windows {
        if_error: Duration::from_secs(if_error),
        while_revalidate: Duration::from_secs(while_revalidate),
        timeout: Some(Duration::from_secs(1)),
    }
}

const WINDOW: Duration = Duration::from_secs(100);

/// A read of `value` written with a 100 s stale window, `left` seconds of its time to live left
/// (so 100 - `left` seconds past its lifetime).
fn dated_read(keys: &EntryKeys, versions: &[Option<Version>], value: &str, left: u64) -> Received {
    dated_read_after(keys, versions, versions, value, left)
}

/// [`dated_read`] of an entry stamped with `stamp` when the tags' versions are `current`.
fn dated_read_after(
    keys: &EntryKeys,
    stamp: &[Option<Version>],
    current: &[Option<Version>],
    value: &str,
    left: u64,
) -> Received {
    let section = crate::codec::Encoding::default().encode(value).unwrap();
    let entry = format::encode_with_window(&keys.observe(stamp), WINDOW, &section).unwrap();
    Ok(Reply::Read(ReadReply {
        entry: Some(entry),
        versions: current.to_vec(),
        ttl: Ttl::Left(Duration::from_secs(left)),
        expiry: crate::engine::Expiry::Unknown,
    }))
}

fn is_dated_read(operation: &Operation<'_>) -> bool {
    matches!(operation, Operation::Read { ttl: true, .. })
}

#[test]
fn a_stale_entry_within_stale_while_revalidate_is_returned_at_once_and_refreshed_by_one_caller() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Run { lock_timeout: None };
    let seen = versions(&keys, 1);
    let stale_hit = || {
        let mut flow = with_windows(&cache, &keys, &codec, mode, windows(10, 0));
        sends(&mut flow, None, is_dated_read);
        // 6 s past its lifetime.
        let output = yields(&mut flow, Some(dated_read(&keys, &seen, "old", 94)));
        assert!(flow.report.info.stale && flow.report.info.hit);
        output
    };
    // The first stale hit leads the entry's flight: its driver starts the refresh with it.
    let Yield::Revalidate(value, refresh) = stale_hit() else {
        panic!("the first stale hit refreshes");
    };
    assert_eq!(value, "old");
    // While that refresh is under way, stale hits return the value and start nothing.
    for _ in 0..3 {
        assert!(matches!(stale_hit(), Yield::Cached(v) if v == "old"));
    }
    assert_eq!(cache.stats(), (4, 0, 4));
    // Once it landed (here: nothing, as a refresh that panicked), the next stale hit leads.
    drop(refresh);
    assert!(matches!(stale_hit(), Yield::Revalidate(v, _) if v == "old"));
    // A stale hit while a `lock = true` caller of this process computes the entry starts none.
    let _computing = cache.flights.join(&keys.entry);
    assert!(matches!(stale_hit(), Yield::Cached(v) if v == "old"));
}

/// The flight of `keys`' entry, led by a refresh about to start.
fn leading(cache: &TestHost, keys: &EntryKeys) -> Leader {
    match cache.flights.join(&keys.entry) {
        Joined::Leader(leader) => leader,
        Joined::Follower(_) => panic!("nobody else computes the entry"),
    }
}

#[test]
fn an_entry_past_every_window_is_a_miss_and_a_fresh_one_a_plain_hit() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Run { lock_timeout: None };
    let seen = versions(&keys, 1);
    let mut flow = with_windows(&cache, &keys, &codec, mode, windows(10, 0));
    sends(&mut flow, None, is_dated_read);
    // 11 s past its lifetime: beyond the 10 s window.
    let read = dated_read(&keys, &seen, "old", 89);
    assert!(matches!(yields(&mut flow, Some(read)), Yield::Compute(_)));
    let mut flow = with_windows(&cache, &keys, &codec, mode, windows(10, 0));
    sends(&mut flow, None, is_dated_read);
    let read = dated_read(&keys, &seen, "fresh", 101);
    assert!(matches!(yields(&mut flow, Some(read)), Yield::Cached(v) if v == "fresh"));
    assert!(!flow.report.info.stale);
}

/// A call with `stale_if_error = 60` that found the entry 30 s past its lifetime and whose
/// function failed: it reads the entry again.
fn failed_with_a_stale_entry<'a>(
    cache: &'a TestHost,
    keys: &'a EntryKeys,
    codec: &'a ValueCodec<String>,
) -> CallFlow<'a, String, TestHost> {
    let mode = Mode::Run { lock_timeout: None };
    let mut flow = with_windows(cache, keys, codec, mode, windows(0, 60));
    sends(&mut flow, None, is_dated_read);
    let seen = versions(keys, 1);
    let read = dated_read(keys, &seen, "old", 70);
    assert!(matches!(yields(&mut flow, Some(read)), Yield::Compute(_)));
    flow.computed(None, true);
    sends(&mut flow, None, is_dated_read);
    flow
}

#[test]
fn a_failed_computation_returns_the_stale_entry_if_it_is_still_current() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = failed_with_a_stale_entry(&cache, &keys, &codec);
    let again = dated_read(&keys, &versions(&keys, 1), "old", 69);
    assert!(matches!(yields(&mut flow, Some(again)), Yield::Instead(v) if v == "old"));
    assert!(flow.report.info.stale && !flow.report.info.hit);
    assert_eq!(cache.stats(), (0, 1, 1));
}

#[test]
fn an_invalidation_while_the_function_ran_leaves_no_stale_value_to_return() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mut flow = failed_with_a_stale_entry(&cache, &keys, &codec);
    let invalidated = dated_read_after(&keys, &versions(&keys, 1), &versions(&keys, 50), "old", 69);
    assert!(matches!(
        yields(&mut flow, Some(invalidated)),
        Yield::Finished
    ));
    assert_eq!(cache.count_of(Counted::StaleHit), 0);
    // Nor after a delete.
    let mut flow = failed_with_a_stale_entry(&cache, &keys, &codec);
    let deleted = Ok(Reply::Read(ReadReply {
        entry: Some(format::tombstone()),
        versions: versions(&keys, 1),
        ttl: Ttl::Left(WINDOW),
        expiry: crate::engine::Expiry::Unknown,
    }));
    assert!(matches!(yields(&mut flow, Some(deleted)), Yield::Finished));
}

#[test]
fn a_failure_without_a_stale_entry_reads_nothing_more() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Run { lock_timeout: None };
    let mut flow = with_windows(&cache, &keys, &codec, mode, windows(0, 60));
    sends(&mut flow, None, is_dated_read);
    let miss = Ok(Reply::Read(read(&keys, &versions(&keys, 1), None)));
    assert!(matches!(yields(&mut flow, Some(miss)), Yield::Compute(_)));
    assert_eq!(
        flow.compute_timeout(),
        None,
        "no stale value to wait against"
    );
    flow.computed(None, true);
    assert!(matches!(yields(&mut flow, None), Yield::Finished));
}

#[test]
fn a_late_computation_hands_its_stamp_over_and_the_call_returns_the_stale_entry() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Run { lock_timeout: None };
    let mut flow = with_windows(&cache, &keys, &codec, mode, windows(0, 60));
    sends(&mut flow, None, is_dated_read);
    let seen = versions(&keys, 1);
    let read = dated_read(&keys, &seen, "old", 70);
    assert!(matches!(
        yields(&mut flow, Some(read)),
        Yield::Compute(Some(limit)) if limit == Duration::from_secs(1)
    ));
    advance(Duration::from_secs(1));
    flow.late();
    let Yield::HandOver(stamp) = yields(&mut flow, None) else {
        panic!("a late computation is handed over");
    };
    assert_eq!(
        stamp.expect("the versions read before computing"),
        keys.observe(&seen)
    );
    flow.handed_over();
    sends(&mut flow, None, is_dated_read);
    let again = dated_read(&keys, &seen, "old", 69);
    assert!(matches!(yields(&mut flow, Some(again)), Yield::Instead(v) if v == "old"));
}

#[test]
fn a_refresh_computes_and_stores_the_entry_with_its_stale_window() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Revalidate { lock_timeout: None };
    let lifetime = Lifetime::After(Duration::from_secs(30));
    let mut flow = CallFlow::new(
        &cache,
        &keys,
        &codec,
        mode,
        lifetime,
        windows(10, 60),
        report(),
    )
    .refreshing(leading(&cache, &keys));
    // It reads again first: another refresh may have just stored.
    sends(&mut flow, None, is_dated_read);
    let seen = versions(&keys, 1);
    let read = dated_read(&keys, &seen, "old", 95);
    assert!(matches!(yields(&mut flow, Some(read)), Yield::Compute(_)));
    flow.computed(Some(b"\x01\"new\"".to_vec()), false);
    sends(&mut flow, None, |operation| {
        matches!(operation, Operation::WriteUnlessDeleted { observed, stale_window, .. }
            if **observed == keys.observe(&seen) && *stale_window == Duration::from_secs(60))
    });
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Done(true)))),
        Yield::Finished
    ));
    // A refresh is neither a hit nor a miss.
    assert_eq!(cache.stats(), (0, 0, 0));
    // It landed: the next caller of the entry leads.
    drop(flow);
    assert!(matches!(cache.flights.join(&keys.entry), Joined::Leader(_)));
}

#[test]
fn a_refresh_gives_way_to_a_computation_elsewhere_or_a_fresh_entry() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Revalidate { lock_timeout: None };
    let mut flow = with_windows(&cache, &keys, &codec, mode, windows(10, 0))
        .refreshing(leading(&cache, &keys));
    sends(&mut flow, None, is_dated_read);
    let fresh = dated_read(&keys, &versions(&keys, 1), "new", 105);
    assert!(matches!(yields(&mut flow, Some(fresh)), Yield::Cached(_)));

    // With the lock, another process holding it refreshes the entry.
    let shared = shared_cache();
    let keys = self::keys(&shared);
    let mode = Mode::Revalidate {
        lock_timeout: Some(LOCK_TIMEOUT),
    };
    let mut flow = with_windows(&shared, &keys, &codec, mode, windows(10, 0))
        .refreshing(leading(&shared, &keys));
    sends(&mut flow, None, |operation| {
        matches!(operation, Operation::Acquire { ttl: true, .. })
    });
    let seen = versions(&keys, 1);
    let Ok(Reply::Read(stale)) = dated_read(&keys, &seen, "old", 95) else {
        unreachable!()
    };
    let held = lock_reply(Some(b"other process"), 5000, stale);
    assert!(matches!(yields(&mut flow, Some(held)), Yield::Finished));
    assert!(flow.abandon().is_none());
}

#[test]
fn followers_of_a_leader_that_failed_take_the_stale_value_it_returned() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = locked();
    let seen = versions(&keys, 1);
    let mut leader = with_windows(&cache, &keys, &codec, mode, windows(0, 60));
    sends(&mut leader, None, is_dated_read);
    sends(
        &mut leader,
        Some(dated_read(&keys, &seen, "old", 70)),
        is_dated_read,
    );
    let mut follower = with_windows(&cache, &keys, &codec, mode, windows(0, 60));
    sends(&mut follower, None, is_dated_read);
    let Yield::Follow(flight, _) = yields(&mut follower, Some(dated_read(&keys, &seen, "old", 70)))
    else {
        panic!("the second caller follows");
    };
    // The leader's recheck, then its failure and the read again.
    assert!(matches!(
        yields(&mut leader, Some(dated_read(&keys, &seen, "old", 70))),
        Yield::Compute(_)
    ));
    leader.computed(None, true);
    sends(&mut leader, None, is_dated_read);
    let again = dated_read(&keys, &seen, "old", 69);
    assert!(matches!(yields(&mut leader, Some(again)), Yield::Instead(v) if v == "old"));
    follower.landed(flight.wait(now()));
    assert!(matches!(yields(&mut follower, None), Yield::Cached(v) if v == "old"));
    assert!(follower.report.info.stale);
    assert_eq!(cache.stats(), (1, 1, 2));
}

#[test]
fn an_entry_past_stale_if_error_leaves_no_timeout_and_nothing_to_fall_back_on() {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    let mode = Mode::Run { lock_timeout: None };
    let mut flow = with_windows(&cache, &keys, &codec, mode, windows(0, 20));
    sends(&mut flow, None, is_dated_read);
    // 30 s past its lifetime, beyond the 20 s of stale_if_error.
    let read = dated_read(&keys, &versions(&keys, 1), "old", 70);
    assert!(matches!(yields(&mut flow, Some(read)), Yield::Compute(_)));
    assert_eq!(
        flow.compute_timeout(),
        None,
        "the computation is waited for"
    );
    flow.computed(None, true);
    assert!(matches!(yields(&mut flow, None), Yield::Finished));
    assert_eq!(cache.count_of(Counted::StaleHit), 0);
}

/// A call that found the entry 30 s past its lifetime within `stale_if_error = 60`, whose
/// computation (limited to 1 s) is late: the driver is asked to hand it over.
fn late_with_a_stale_entry<'a>(
    cache: &'a TestHost,
    keys: &'a EntryKeys,
    codec: &'a ValueCodec<String>,
) -> CallFlow<'a, String, TestHost> {
    let mode = Mode::Run { lock_timeout: None };
    let mut flow = with_windows(cache, keys, codec, mode, windows(0, 60));
    sends(&mut flow, None, is_dated_read);
    let read = dated_read(keys, &versions(keys, 1), "old", 70);
    assert!(matches!(
        yields(&mut flow, Some(read)),
        Yield::Compute(Some(_))
    ));
    advance(Duration::from_secs(1));
    flow.late();
    assert!(matches!(yields(&mut flow, None), Yield::HandOver(Some(_))));
    flow
}

#[test]
fn a_late_computation_is_joined_when_no_stale_value_stands_in_and_stored_when_it_finished_meanwhile(
) {
    let cache = memory_cache();
    let keys = keys(&cache);
    let codec = ValueCodec::<String>::serde(None);
    // Handed over, then the entry turns out invalidated: wait for the computation after all
    // (it stores its value itself).
    let mut flow = late_with_a_stale_entry(&cache, &keys, &codec);
    flow.handed_over();
    sends(&mut flow, None, is_dated_read);
    let invalidated = dated_read_after(&keys, &versions(&keys, 1), &versions(&keys, 50), "old", 69);
    assert!(matches!(yields(&mut flow, Some(invalidated)), Yield::Join));
    assert_eq!(flow.report.info.decorated_elapsed, Duration::from_secs(1));
    // The computation finished before it could be handed over: the call stores its value.
    let mut flow = late_with_a_stale_entry(&cache, &keys, &codec);
    flow.computed(Some(b"\x01\"new\"".to_vec()), false);
    sends(&mut flow, None, |operation| {
        matches!(operation, Operation::WriteUnlessDeleted { .. })
    });
    assert!(matches!(
        yields(&mut flow, Some(Ok(Reply::Done(true)))),
        Yield::Finished
    ));
}
