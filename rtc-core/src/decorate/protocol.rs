//! One decorated call as a state machine: look the entry up, and on a miss compute and store it,
//! with `lock = true` coalescing callers in the process and across processes.
//!
//! The machine is a [`Flow`] whose output is what the driver must do next besides round trips
//! ([`Yield`]): wait for another caller of this process, run the function, or return. It never
//! blocks, awaits or touches a connection, so the same code serves `Call::run` and
//! `Call::run_async`.
//!
//! With `lock = true`, callers of the same entry coalesce on one leader (`flights`). The leader
//! takes the entry's Redis lock (`SET lock token NX GET PX timeout`, the entry read in the same
//! round trip); its holder computes, stores and releases the lock with a script that pushes its
//! token on the entry's wake list. Waiters in other processes block on that list (`BLPOP`) until
//! the holder's token arrives, the lock expires, or their own `lock_timeout` passes; a woken
//! waiter passes the token on, then reads the value. Any Redis error ends the protocol for that
//! caller, who computes by itself (fail open).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flights::{Flight, Joined, Landing, Leader};
use super::outcome::Codec;
use super::Report;
use crate::cache::TaggedCache;
use crate::engine::{CreateTagsFlow, Flow, Lookup, Operation, Progress, ReadFlow, Received, Reply};
use crate::format::{unique_u64, EntryKeys, LockKeys, Observed};
use crate::stats::Counters;

/// Waiters wake this long after the lock's expiry, so that it has expired when they retry.
const EXPIRY_MARGIN: Duration = Duration::from_millis(20);

/// What the driver does next, besides round trips.
pub(super) enum Yield<V> {
    /// Wait until the flight lands or the deadline passes; then [`CallFlow::landed`].
    Follow(Arc<Flight>, Instant),
    /// Run the function; then [`CallFlow::computed`] with its cacheable value's bytes.
    Compute,
    /// Return this value (from the cache, or from another caller's computation).
    Cached(V),
    /// Return what was computed: everything is stored and released.
    Finished,
}

/// How the call uses the cache.
#[derive(Clone, Copy, Debug)]
pub(super) enum Mode {
    /// A hit returns the cached value; a miss computes.
    Run { lock_timeout: Option<Duration> },
    /// Always compute and store (`refresh_<fn>`).
    Refresh,
}

/// A Redis lock this call holds: what it takes to release it.
#[derive(Clone, Debug)]
pub(super) struct HeldLock {
    pub keys: LockKeys,
    pub token: [u8; 8],
    pub lifetime: Duration,
}

impl HeldLock {
    pub(super) fn release(&self) -> Operation<'_> {
        Operation::Release {
            lock: &self.keys,
            token: &self.token,
            lifetime: self.lifetime,
        }
    }
}

enum State<'a, V> {
    Start,
    /// The first lookup (counted as the call's hit or miss).
    Looking(ReadFlow<'a>),
    /// With `lock = true`: join this process's computation of the entry, or lead it.
    Joining,
    /// A leader on a backend no other process shares reads again (a leader may have just landed).
    Rechecking(ReadFlow<'a>),
    /// `Acquire` sent: take the Redis lock and read the entry.
    Acquiring,
    /// Finishing the read that came with `Acquire`.
    Completing {
        read: ReadFlow<'a>,
        holder: Option<Vec<u8>>,
        lock_ttl: Duration,
    },
    /// The lock's holder found the value after all and releases the lock before returning it.
    ReleasingAfterHit(V),
    /// `WaitForWake` sent: another process holds the lock.
    Waiting {
        holder: Vec<u8>,
        expires: Instant,
        since: Instant,
        timeout: Duration,
    },
    /// Waiting (in the driver) for this process's leader.
    Following {
        flight: Arc<Flight>,
        since: Instant,
    },
    /// Giving versions to tags that have none, before computing.
    CreatingTags(CreateTagsFlow),
    /// Everything is ready: the driver is to run the function.
    ReadyToCompute,
    /// The driver is running the function.
    Computing,
    /// `WriteUnlessDeleted` sent.
    Storing,
    /// `Release` sent after storing.
    Releasing,
    Finished,
}

/// One decorated call's protocol.
pub(super) struct CallFlow<'a, V> {
    cache: &'a TaggedCache,
    keys: &'a EntryKeys,
    codec: &'a Codec<V>,
    mode: Mode,
    lifetime: Option<Duration>,
    /// What the call found and did, for the hook.
    pub(super) report: Report,
    /// The tag versions read before computing (`None`: the backend could not be read).
    observed: Option<Observed>,
    /// When a `lock = true` caller stops waiting for others and computes by itself.
    deadline: Instant,
    leader: Option<Leader<'a>>,
    /// What the leader leaves for its followers when it is done.
    landing: Option<Landing>,
    lock: Option<HeldLock>,
    /// True while this call holds `lock` in Redis.
    holding: bool,
    /// A wake-up token to pass on to the next waiter.
    baton: Option<Vec<u8>>,
    /// The landing a follower received.
    landed: Option<Option<Landing>>,
    /// The computed value's bytes, if it is to be cached.
    computed: Option<Vec<u8>>,
    state: State<'a, V>,
}

impl<'a, V> CallFlow<'a, V> {
    pub(super) fn new(
        cache: &'a TaggedCache,
        keys: &'a EntryKeys,
        codec: &'a Codec<V>,
        mode: Mode,
        lifetime: Option<Duration>,
        report: Report,
    ) -> Self {
        Self {
            cache,
            keys,
            codec,
            mode,
            lifetime,
            report,
            observed: None,
            deadline: Instant::now(),
            leader: None,
            landing: None,
            lock: None,
            holding: false,
            baton: None,
            landed: None,
            computed: None,
            state: State::Start,
        }
    }

    /// What a follower's wait for its leader returned (`None`: the deadline passed).
    pub(super) fn landed(&mut self, landing: Option<Landing>) {
        self.landed = Some(landing);
    }

    /// The function ran: here are its cacheable value's bytes (`None`: nothing to cache).
    pub(super) fn computed(&mut self, bytes: Option<Vec<u8>>) {
        self.computed = bytes;
    }

    /// The lock this call holds, when it is abandoned (a panic, a cancelled future) before
    /// releasing it: the driver releases it so that waiters elsewhere wake at once.
    pub(super) fn abandon(&mut self) -> Option<HeldLock> {
        if !self.holding {
            return None;
        }
        self.holding = false;
        self.lock.take()
    }

    fn lock_timeout(&self) -> Option<Duration> {
        match self.mode {
            Mode::Run { lock_timeout } => lock_timeout,
            Mode::Refresh => None,
        }
    }

    /// The value of a hit, with what a leader lands for its followers; or the versions the read
    /// observed, to stamp a computed value with.
    fn decoded(&mut self, lookup: Lookup) -> Result<(V, Landing), Option<Observed>> {
        match lookup {
            Lookup::Hit(bytes, observed) => match (self.codec.decode)(&bytes) {
                Some(value) => {
                    self.report.hit(bytes.len());
                    Ok((value, Landing::new(Some(bytes.into_vec()), Some(observed))))
                }
                None => Err(Some(observed)),
            },
            Lookup::Miss(observed) => Err(Some(observed)),
            Lookup::Unavailable => Err(None),
        }
    }

    /// Versions observed by a later read replace earlier ones; a failed read keeps them.
    fn observe(&mut self, fresh: Option<Observed>) {
        if fresh.is_some() {
            self.observed = fresh;
        }
    }

    fn start_waiting(&self) -> Instant {
        Counters::bump(&self.cache.counters().lock_waits);
        tracing::debug!(
            function = self.report.info.function_name,
            "rtc: waiting for another caller's computation"
        );
        Instant::now()
    }

    /// Before computing: tag versions are completed first, if the backend could be read.
    fn prepare_to_compute(&mut self) -> State<'a, V> {
        match self.observed.take() {
            Some(observed) => State::CreatingTags(self.cache.create_tags_flow(observed)),
            None => State::ReadyToCompute,
        }
    }

    /// A waiter whose lock holder is elsewhere: block on the wake list, or give up.
    fn wait(&mut self, holder: Vec<u8>, expires: Instant, since: Instant) -> State<'a, V> {
        match wait_timeout(expires, self.deadline) {
            Some(timeout) => State::Waiting {
                holder,
                expires,
                since,
                timeout,
            },
            None => {
                self.report.waited(since);
                self.prepare_to_compute()
            }
        }
    }

    /// Lands what followers receive, and ends the call.
    fn finish(&mut self) -> Progress<Yield<V>> {
        if let Some(leader) = self.leader.take() {
            leader.land(self.landing.take().unwrap_or(Landing::Nothing));
        }
        self.state = State::Finished;
        Progress::Done(Yield::Finished)
    }

    /// Returns a value without computing: lands it for followers first.
    fn cached(&mut self, value: V, landing: Landing) -> Progress<Yield<V>> {
        if let Some(leader) = self.leader.take() {
            leader.land(landing);
        }
        self.state = State::Finished;
        Progress::Done(Yield::Cached(value))
    }
}

impl<V> Flow for CallFlow<'_, V> {
    type Output = Yield<V>;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Yield<V>> {
        let mut reply = reply;
        loop {
            let state = std::mem::replace(&mut self.state, State::Finished);
            self.state = match state {
                State::Start => State::Looking(self.cache.read_flow(self.keys)),
                State::Looking(mut read) => match read.advance(reply.take()) {
                    Progress::Send => {
                        self.state = State::Looking(read);
                        return Progress::Send;
                    }
                    Progress::Done(lookup) => {
                        self.cache.count_lookup(&lookup);
                        if matches!(lookup, Lookup::Unavailable) {
                            tracing::debug!(
                                function = self.report.info.function_name,
                                "rtc: cache unavailable, bypassing it"
                            );
                        }
                        let lock_timeout = match self.mode {
                            Mode::Refresh => {
                                self.observed = lookup.into_observed();
                                self.state = self.prepare_to_compute();
                                continue;
                            }
                            Mode::Run { lock_timeout } => lock_timeout,
                        };
                        match self.decoded(lookup) {
                            Ok((value, _)) => {
                                self.report.info.lock_full_hit = lock_timeout.is_some();
                                self.state = State::Finished;
                                return Progress::Done(Yield::Cached(value));
                            }
                            Err(observed) => self.observed = observed,
                        }
                        match lock_timeout {
                            Some(timeout) => {
                                self.deadline = Instant::now() + timeout;
                                State::Joining
                            }
                            None => self.prepare_to_compute(),
                        }
                    }
                },
                State::Joining => match self.cache.flights().join(&self.keys.entry) {
                    Joined::Leader(leader) => {
                        self.leader = Some(leader);
                        if self.cache.backend().is_shared() {
                            self.lock = Some(HeldLock {
                                keys: self.cache.lock_keys(self.keys),
                                token: unique_u64().to_le_bytes(),
                                lifetime: self.lock_timeout().unwrap_or_default(),
                            });
                            self.state = State::Acquiring;
                            return Progress::Send;
                        }
                        State::Rechecking(self.cache.read_flow(self.keys))
                    }
                    Joined::Follower(flight) => {
                        let since = self.start_waiting();
                        self.state = State::Following {
                            flight: Arc::clone(&flight),
                            since,
                        };
                        return Progress::Done(Yield::Follow(flight, self.deadline));
                    }
                },
                State::Rechecking(mut read) => match read.advance(reply.take()) {
                    Progress::Send => {
                        self.state = State::Rechecking(read);
                        return Progress::Send;
                    }
                    Progress::Done(lookup) => {
                        self.cache.count_lookup(&lookup);
                        match self.decoded(lookup) {
                            Ok((value, landing)) => return self.cached(value, landing),
                            Err(fresh) => self.observe(fresh),
                        }
                        self.report.info.lock_full_miss = true;
                        self.prepare_to_compute()
                    }
                },
                State::Acquiring => {
                    match reply.take().map(|reply| reply.and_then(Reply::into_lock)) {
                        Some(Ok(attempt)) => {
                            self.holding = attempt.holder.is_none();
                            let read = ReadFlow::completing(
                                self.cache.key_space(),
                                self.keys,
                                attempt.read,
                            );
                            State::Completing {
                                read,
                                holder: attempt.holder,
                                lock_ttl: attempt.lock_ttl,
                            }
                        }
                        // The driver reported the failure: compute without the lock.
                        _ => self.prepare_to_compute(),
                    }
                }
                State::Completing {
                    mut read,
                    holder,
                    lock_ttl,
                } => match read.advance(reply.take()) {
                    Progress::Send => {
                        self.state = State::Completing {
                            read,
                            holder,
                            lock_ttl,
                        };
                        return Progress::Send;
                    }
                    Progress::Done(lookup) => {
                        match self.decoded(lookup) {
                            Ok((value, landing)) if self.holding => {
                                self.landing = Some(landing);
                                self.state = State::ReleasingAfterHit(value);
                                return Progress::Send;
                            }
                            Ok((value, landing)) => return self.cached(value, landing),
                            Err(fresh) => self.observe(fresh),
                        }
                        match holder {
                            None => {
                                self.report.info.lock_full_miss = true;
                                self.prepare_to_compute()
                            }
                            Some(holder) => {
                                let since = self.start_waiting();
                                self.wait(holder, Instant::now() + lock_ttl, since)
                            }
                        }
                    }
                },
                State::ReleasingAfterHit(value) => {
                    if reply.take().is_none() {
                        self.state = State::ReleasingAfterHit(value);
                        return Progress::Send;
                    }
                    self.holding = false;
                    let landing = self.landing.take().unwrap_or(Landing::Nothing);
                    return self.cached(value, landing);
                }
                State::Waiting {
                    holder,
                    expires,
                    since,
                    timeout,
                } => match reply.take().map(|reply| reply.and_then(Reply::into_woken)) {
                    Some(Ok(Some(token))) if token == holder => {
                        self.report.waited(since);
                        self.baton = Some(token);
                        self.state = State::Acquiring;
                        return Progress::Send;
                    }
                    // An earlier holder's token: dropped; wait for what is left of this lock.
                    Some(Ok(Some(_))) => self.wait(holder, expires, since),
                    Some(Ok(None)) if Instant::now() < self.deadline => {
                        // The lock expired: try to take it.
                        self.report.waited(since);
                        self.state = State::Acquiring;
                        return Progress::Send;
                    }
                    None => {
                        self.state = State::Waiting {
                            holder,
                            expires,
                            since,
                            timeout,
                        };
                        return Progress::Send;
                    }
                    // This caller's `lock_timeout` passed, or Redis failed: compute without the lock.
                    Some(_) => {
                        self.report.waited(since);
                        self.prepare_to_compute()
                    }
                },
                State::Following { flight, since } => {
                    let Some(landing) = self.landed.take() else {
                        self.state = State::Following {
                            flight: Arc::clone(&flight),
                            since,
                        };
                        return Progress::Done(Yield::Follow(flight, self.deadline));
                    };
                    self.report.waited(since);
                    let shared = landing
                        .as_ref()
                        .and_then(|landing| landing.value_for(self.observed.as_ref()))
                        .and_then(|bytes| {
                            (self.codec.decode)(bytes).map(|value| (value, bytes.len()))
                        });
                    if let Some((value, size)) = shared {
                        self.report.hit(size);
                        self.state = State::Finished;
                        return Progress::Done(Yield::Cached(value));
                    }
                    if landing.is_some() && Instant::now() < self.deadline {
                        State::Joining
                    } else {
                        // Waited the whole `lock_timeout`: compute by itself.
                        self.prepare_to_compute()
                    }
                }
                State::CreatingTags(mut creating) => match creating.advance(reply.take()) {
                    Progress::Send => {
                        self.state = State::CreatingTags(creating);
                        return Progress::Send;
                    }
                    Progress::Done(observed) => {
                        self.observed = observed;
                        State::ReadyToCompute
                    }
                },
                State::ReadyToCompute => {
                    self.state = State::Computing;
                    return Progress::Done(Yield::Compute);
                }
                State::Computing => {
                    if let (Some(_), Some(bytes)) = (&self.observed, &self.computed) {
                        self.report.info.serialized_size = bytes.len();
                        self.state = State::Storing;
                        return Progress::Send;
                    }
                    self.stored()
                }
                State::Storing => {
                    let written = reply
                        .take()
                        .is_some_and(|reply| reply.and_then(Reply::into_done).unwrap_or(false));
                    self.cache.count_write(written);
                    self.stored()
                }
                State::Releasing => {
                    if reply.take().is_none() {
                        self.state = State::Releasing;
                        return Progress::Send;
                    }
                    self.holding = false;
                    return self.finish();
                }
                State::Finished => return Progress::Done(Yield::Finished),
            };
            match self.state {
                State::Finished => return self.finish(),
                // Entered without a reply to wait for: their operation goes out first.
                State::Acquiring
                | State::Waiting { .. }
                | State::Storing
                | State::Releasing
                | State::ReleasingAfterHit(_) => return Progress::Send,
                _ => {}
            }
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        match &self.state {
            State::Looking(read) | State::Rechecking(read) | State::Completing { read, .. } => {
                read.operation()
            }
            State::CreatingTags(creating) => creating.operation(),
            State::Acquiring => {
                let lock = self.lock.as_ref()?;
                Some(Operation::Acquire {
                    lock: &lock.keys,
                    token: &lock.token,
                    lifetime: lock.lifetime,
                    baton: self.baton.as_deref(),
                    entry: &self.keys.entry,
                    tags: self.keys.tags(),
                })
            }
            State::Waiting { timeout, .. } => Some(Operation::WaitForWake {
                lock: &self.lock.as_ref()?.keys,
                timeout: *timeout,
            }),
            State::Storing => Some(self.cache.write_observed_operation(
                self.keys,
                self.observed.as_ref()?,
                self.computed.as_deref()?,
                self.lifetime,
            )),
            State::ReleasingAfterHit(_) | State::Releasing => Some(self.lock.as_ref()?.release()),
            _ => None,
        }
    }
}

impl<'a, V> CallFlow<'a, V> {
    /// After the store (or when there was nothing to store): release the lock, then land.
    fn stored(&mut self) -> State<'a, V> {
        if self.leader.is_some() {
            self.landing = Some(Landing::new(self.computed.take(), self.observed.take()));
        }
        if self.holding {
            State::Releasing
        } else {
            State::Finished
        }
    }
}

/// How long to block on the wake list: until the lock expires or the deadline, whichever is first.
fn wait_timeout(expires: Instant, deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    let left = deadline.checked_duration_since(now)?;
    let lock_left = expires.saturating_duration_since(now) + EXPIRY_MARGIN;
    (!left.is_zero()).then(|| left.min(lock_left))
}

#[cfg(test)]
mod tests {
    //! Every transition of the protocol, with replies made by hand: no Redis needed. The real
    //! servers are in the integration tests (`tests/tests/stampede.rs` and the fault suite).

    use super::*;
    use crate::backend::BackendError;
    use crate::engine::{LockAttempt, ReadReply};
    use crate::format::{self, Version};
    use crate::hook::CacheInfo;

    const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

    /// A cache on a Redis that is never contacted: the protocol only asks for round trips.
    fn shared_cache() -> TaggedCache {
        TaggedCache::builder()
            .url("redis://127.0.0.1:1/0")
            .build()
            .unwrap()
    }

    fn memory_cache() -> TaggedCache {
        TaggedCache::builder()
            .in_local_memory(true)
            .build()
            .unwrap()
    }

    fn report() -> Report {
        Report {
            started: Instant::now(),
            info: CacheInfo::default(),
        }
    }

    fn keys(cache: &TaggedCache) -> EntryKeys {
        let function = cache.key_space().implicit_tag("f");
        cache.entry_keys("k", ["a"], vec![function])
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
        let json = value.map(|value| serde_json::to_vec(value).unwrap());
        ReadReply {
            entry: json.map(|json| format::encode(&keys.observe(versions), &json).unwrap()),
            versions: versions.to_vec(),
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
        flow: &mut CallFlow<'_, V>,
        reply: Option<Received>,
        is: impl Fn(&Operation<'_>) -> bool,
    ) {
        assert!(
            matches!(flow.advance(reply), Progress::Send),
            "expected an operation"
        );
        let operation = flow.operation().expect("an operation to send");
        assert!(is(&operation), "unexpected operation {operation:?}");
    }

    fn yields<V: std::fmt::Debug>(flow: &mut CallFlow<'_, V>, reply: Option<Received>) -> Yield<V> {
        match flow.advance(reply) {
            Progress::Done(output) => output,
            Progress::Send => panic!("unexpected operation {:?}", flow.operation()),
        }
    }

    impl<V: std::fmt::Debug> std::fmt::Debug for Yield<V> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Yield::Follow(_, _) => f.write_str("Follow"),
                Yield::Compute => f.write_str("Compute"),
                Yield::Cached(value) => write!(f, "Cached({value:?})"),
                Yield::Finished => f.write_str("Finished"),
            }
        }
    }

    fn is_read(operation: &Operation<'_>) -> bool {
        matches!(operation, Operation::Read { .. })
    }

    #[test]
    fn a_fresh_entry_is_returned_without_computing() {
        let cache = memory_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        let reply = Ok(Reply::Read(read(&keys, &seen, Some("v"))));
        assert!(matches!(yields(&mut flow, Some(reply)), Yield::Cached(v) if v == "v"));
        assert!(flow.report.info.hit && flow.report.info.lock_full_hit);
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn a_miss_creates_missing_tags_then_computes_then_stores_stamped_with_what_it_read() {
        let cache = memory_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mode = Mode::Run { lock_timeout: None };
        let mut flow = CallFlow::new(&cache, &keys, &codec, mode, None, report());
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
        assert!(matches!(yields(&mut flow, Some(created)), Yield::Compute));
        flow.computed(Some(b"\"new\"".to_vec()));
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
        assert_eq!((cache.stats().misses, cache.stats().sets), (1, 1));
    }

    #[test]
    fn an_unreachable_backend_means_computing_and_storing_nothing() {
        let cache = shared_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        // Not even the lock: one process computing alone is all a failing Redis can offer.
        sends(&mut flow, Some(Err(BackendError::Skipped)), |operation| {
            matches!(operation, Operation::Acquire { .. })
        });
        assert!(matches!(
            yields(&mut flow, Some(Err(BackendError::Skipped))),
            Yield::Compute
        ));
        flow.computed(Some(b"\"v\"".to_vec()));
        assert!(matches!(yields(&mut flow, None), Yield::Finished));
        assert!(flow.abandon().is_none());
    }

    #[test]
    fn the_lock_holder_computes_stores_releases_and_lands_for_followers() {
        let cache = shared_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        let miss = || read(&keys, &seen, None);
        sends(&mut flow, Some(Ok(Reply::Read(miss()))), |operation| {
            matches!(operation, Operation::Acquire { baton: None, .. })
        });
        let follower = match cache.flights().join(&keys.entry) {
            Joined::Follower(flight) => flight,
            Joined::Leader(_) => panic!("the first caller leads"),
        };
        assert!(matches!(
            yields(&mut flow, Some(lock_reply(None, 5000, miss()))),
            Yield::Compute
        ));
        assert!(flow.report.info.lock_full_miss);
        flow.computed(Some(b"\"v\"".to_vec()));
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
        let landing = follower.wait(Instant::now()).expect("landed");
        assert_eq!(
            landing.value_for(Some(&keys.observe(&seen))),
            Some(&b"\"v\""[..])
        );
    }

    #[test]
    fn a_holder_that_finds_the_value_releases_the_lock_and_returns_it() {
        let cache = shared_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
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
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        let miss = || read(&keys, &seen, None);
        sends(&mut flow, Some(Ok(Reply::Read(miss()))), |operation| {
            matches!(operation, Operation::Acquire { .. })
        });
        sends(
            &mut flow,
            Some(lock_reply(Some(b"holder"), 1000, miss())),
            |operation| {
                matches!(operation, Operation::WaitForWake { timeout, .. }
                    if *timeout <= Duration::from_millis(1000) + EXPIRY_MARGIN)
            },
        );
        assert_eq!(cache.stats().lock_waits, 1);
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
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        let miss = || read(&keys, &seen, None);
        sends(&mut flow, Some(Ok(Reply::Read(miss()))), |operation| {
            matches!(operation, Operation::Acquire { .. })
        });
        sends(
            &mut flow,
            Some(lock_reply(Some(b"holder"), 300, miss())),
            |_| true,
        );
        std::thread::sleep(Duration::from_millis(120));
        // At least 120 ms of the lock's 300 are gone: waiting the whole 300 again would block
        // past the lock's expiry.
        let stale = Ok(Reply::Woken(Some(b"an earlier holder".to_vec())));
        sends(&mut flow, Some(stale), |operation| match operation {
            Operation::WaitForWake { timeout, .. } => {
                *timeout <= Duration::from_millis(300 - 120) + EXPIRY_MARGIN
            }
            _ => false,
        });
    }

    #[test]
    fn an_expired_lock_is_tried_again_and_a_failed_wait_computes_alone() {
        let cache = shared_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        let miss = || read(&keys, &seen, None);
        sends(&mut flow, Some(Ok(Reply::Read(miss()))), |_| true);
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
            Yield::Compute
        ));
        flow.computed(Some(b"\"v\"".to_vec()));
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
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        sends(
            &mut flow,
            Some(Ok(Reply::Read(read(&keys, &seen, None)))),
            |_| true,
        );
        assert!(matches!(
            yields(&mut flow, Some(Err(BackendError::Skipped))),
            Yield::Compute
        ));
        assert!(flow.abandon().is_none());
    }

    #[test]
    fn an_abandoned_holder_hands_its_lock_to_the_driver_once() {
        let cache = shared_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        let miss = || read(&keys, &seen, None);
        sends(&mut flow, Some(Ok(Reply::Read(miss()))), |_| true);
        assert!(matches!(
            yields(&mut flow, Some(lock_reply(None, 5000, miss()))),
            Yield::Compute
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
        let codec = Codec::<String>::json();
        let seen = versions(&keys, 1);
        let miss = || Ok(Reply::Read(read(&keys, &seen, None)));
        let follow = |flow: &mut CallFlow<'_, String>| {
            sends(flow, None, is_read);
            assert!(matches!(yields(flow, Some(miss())), Yield::Follow(..)));
        };

        let leader = cache.flights().join(&keys.entry);
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        follow(&mut flow);
        flow.landed(Some(Landing::new(
            Some(b"\"shared\"".to_vec()),
            Some(keys.observe(&seen)),
        )));
        assert!(matches!(yields(&mut flow, None), Yield::Cached(v) if v == "shared"));

        // A value stamped before an invalidation this follower saw is not taken: it goes round
        // again, and leads when nobody else does.
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        follow(&mut flow);
        flow.landed(Some(Landing::new(
            Some(b"\"old\"".to_vec()),
            Some(keys.observe(&versions(&keys, 50))),
        )));
        drop(leader);
        sends(&mut flow, None, is_read);

        // A follower whose deadline passed computes by itself.
        let _leader = cache.flights().join(&keys.entry);
        let mut flow = CallFlow::new(&cache, &keys, &codec, locked(), None, report());
        follow(&mut flow);
        flow.landed(None);
        assert!(matches!(yields(&mut flow, None), Yield::Compute));
    }

    #[test]
    fn a_refresh_computes_even_on_a_hit() {
        let cache = memory_cache();
        let keys = keys(&cache);
        let codec = Codec::<String>::json();
        let mut flow = CallFlow::new(&cache, &keys, &codec, Mode::Refresh, None, report());
        sends(&mut flow, None, is_read);
        let seen = versions(&keys, 1);
        let hit = Ok(Reply::Read(read(&keys, &seen, Some("v"))));
        assert!(matches!(yields(&mut flow, Some(hit)), Yield::Compute));
    }
}
