//! One decorated call as a state machine: look the entry up, and on a miss compute and store it,
//! with `lock = true` coalescing callers in the process and across processes (`lock.rs`).
//!
//! The machine is a [`Flow`] whose output is what the driver must do next besides round trips
//! ([`Yield`]): wait for another caller of this process, run the function, or return. It never
//! blocks, awaits or touches a connection, so the same code serves `Call::run` and
//! `Call::run_async`. Each state has a handler that says what comes next ([`Next`]).
//!
//! With a stale option (`stale.rs`), reads date the entry too: an entry past its lifetime
//! whose tags are all current is returned at once with `stale_while_revalidate` (when the call
//! leads the entry's flight, the driver refreshes it in the background, in
//! [`Mode::Revalidate`]), and kept in mind otherwise: a
//! computation that fails (or times out) reads the entry again and returns it if it is still
//! current and within `stale_if_error` (`fallback.rs`).

mod fallback;
mod lock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outcome::ValueCodec;
use super::stale::Windows;
use super::Report;
use crate::cache::flights::{Flight, Landing, Leader};
use crate::cache::TaggedCache;
use crate::engine::{CreateTagsFlow, Flow, Lookup, Operation, Progress, ReadFlow, Received, Reply};
use crate::format::{EntryKeys, LockKeys, Observed};
use crate::lifetime::Lifetime;
use crate::near::{Fill, Named};

/// What the driver does next, besides round trips.
pub(super) enum Yield<V> {
    /// Wait until the flight lands or the deadline passes; then [`CallFlow::landed`].
    Follow(Arc<Flight>, Instant),
    /// Run the function; then [`CallFlow::computed`] with its cacheable value's bytes.
    Compute,
    /// Return this value (from the cache, or from another caller's computation).
    Cached(V),
    /// Return this stale value at once, and refresh the entry in the background
    /// (`stale_while_revalidate`), on a thread or task of its own: this caller leads the
    /// entry's flight, and hands it to the refresh ([`CallFlow::refreshing`]). A stale hit on
    /// an entry whose flight is in the air already is [`Yield::Cached`]: someone computes it.
    Revalidate(V, Leader),
    /// Return this value from the cache instead of what the function returned: it failed or
    /// timed out (`stale_if_error`).
    Instead(V),
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
    /// A background refresh of a stale entry, leading its flight from the start (the stale hit
    /// that started it joined it): compute and store unless another process holds its lock
    /// (`lock_timeout`), or the entry turns out to be fresh already.
    Revalidate { lock_timeout: Option<Duration> },
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
    /// The function failed: reading the entry again, to return it instead if it is current.
    FallingBack(ReadFlow<'a>),
    Finished,
}

/// What a state's handler decides.
enum Next<'a, V> {
    /// Go on to this state at once (no reply to wait for).
    Then(State<'a, V>),
    /// Enter this state and send its operation.
    Send(State<'a, V>),
    /// Enter this state and hand this to the driver.
    Yield(Yield<V>, State<'a, V>),
}

/// One decorated call's protocol.
pub(super) struct CallFlow<'a, V> {
    cache: &'a TaggedCache,
    keys: &'a EntryKeys,
    codec: &'a ValueCodec<V>,
    mode: Mode,
    lifetime: Lifetime,
    windows: Windows,
    /// True once a read found the entry past its lifetime, within `stale_if_error`.
    stale_seen: bool,
    /// True when the function returned no value to cache because it failed (or timed out).
    failed: bool,
    /// True once the entry was read again after a failure.
    fell_back: bool,
    /// What the call found and did, for the hook.
    pub(super) report: Report,
    /// The tag versions read before computing (`None`: the backend could not be read).
    observed: Option<Observed>,
    /// When a `lock = true` caller stops waiting for others and computes by itself.
    deadline: Instant,
    leader: Option<Leader>,
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
    /// What the first lookup's value is kept under in the near cache, if anything.
    named: Option<Named<'a, String>>,
    /// The first lookup, registered as a near-cache fill before it is sent.
    fill: Option<Fill>,
    state: State<'a, V>,
}

impl<'a, V> CallFlow<'a, V> {
    pub(super) fn new(
        cache: &'a TaggedCache,
        keys: &'a EntryKeys,
        codec: &'a ValueCodec<V>,
        mode: Mode,
        lifetime: Lifetime,
        windows: Windows,
        report: Report,
    ) -> Self {
        let started = report.started;
        Self {
            cache,
            keys,
            codec,
            mode,
            lifetime,
            windows,
            stale_seen: false,
            failed: false,
            fell_back: false,
            report,
            observed: None,
            // Set when a `lock = true` miss starts waiting; a hit never reads it.
            deadline: started,
            leader: None,
            landing: None,
            lock: None,
            holding: false,
            baton: None,
            landed: None,
            computed: None,
            named: None,
            fill: None,
            state: State::Start,
        }
    }

    /// The protocol of a background refresh (`Mode::Revalidate`), leading the flight its stale
    /// hit joined.
    pub(super) fn refreshing(mut self, leader: Leader) -> Self {
        self.leader = Some(leader);
        self
    }

    /// Keeps the value the first lookup finds in the near cache, under `named`.
    pub(super) fn fill_near(&mut self, named: Option<Named<'a, String>>) {
        self.named = named;
    }

    /// The lifetime the call stores its value with.
    pub(super) fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    /// The call's stale windows.
    pub(super) fn windows(&self) -> Windows {
        self.windows
    }

    /// What a follower's wait for its leader returned (`None`: the deadline passed).
    pub(super) fn landed(&mut self, landing: Option<Landing>) {
        self.landed = Some(landing);
    }

    /// The function ran: here are its cacheable value's bytes (`None`: nothing to cache), and
    /// whether it failed (`Err` or `None`).
    pub(super) fn computed(&mut self, bytes: Option<Vec<u8>>, failed: bool) {
        self.computed = bytes;
        self.failed = failed;
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

    /// Runs the handler of `state`.
    fn handle(&mut self, state: State<'a, V>, reply: Option<Received>) -> Next<'a, V> {
        match state {
            State::Start if matches!(self.mode, Mode::Revalidate { .. }) => self.lead(),
            State::Start => {
                self.fill = self.cache.near_fill(self.named.as_ref(), self.keys);
                let read = self.read_flow().asking_expiry(self.fill.is_some());
                Next::Then(State::Looking(read))
            }
            State::Looking(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::Looking(read)),
                Progress::Done(lookup) => self.looked_up(lookup),
            },
            State::Joining => self.join(),
            State::Rechecking(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::Rechecking(read)),
                Progress::Done(lookup) => self.rechecked(lookup),
            },
            State::Acquiring => self.acquired(reply),
            State::Completing {
                mut read,
                holder,
                lock_ttl,
            } => match read.advance(reply) {
                Progress::Send => Next::Send(State::Completing {
                    read,
                    holder,
                    lock_ttl,
                }),
                Progress::Done(lookup) => self.completed(lookup, holder, lock_ttl),
            },
            State::ReleasingAfterHit(value) => match reply {
                None => Next::Send(State::ReleasingAfterHit(value)),
                Some(_) => {
                    self.holding = false;
                    let landing = self.landing.take().unwrap_or(Landing::Nothing);
                    self.cached(value, landing)
                }
            },
            State::Waiting {
                holder,
                expires,
                since,
                timeout,
            } => self.woken(reply, holder, expires, since, timeout),
            State::Following { flight, since } => self.followed(flight, since),
            State::CreatingTags(mut creating) => match creating.advance(reply) {
                Progress::Send => Next::Send(State::CreatingTags(creating)),
                Progress::Done(observed) => {
                    self.observed = observed;
                    Next::Then(State::ReadyToCompute)
                }
            },
            State::ReadyToCompute => Next::Yield(Yield::Compute, State::Computing),
            State::Computing => match (&self.observed, &self.computed) {
                (Some(_), Some(bytes)) => {
                    self.report.stored(bytes);
                    Next::Send(State::Storing)
                }
                _ => self.stored(),
            },
            State::Storing => {
                let written =
                    reply.is_some_and(|reply| reply.and_then(Reply::into_done).unwrap_or(false));
                self.cache.count_write(written);
                self.stored()
            }
            State::Releasing => match reply {
                None => Next::Send(State::Releasing),
                Some(_) => {
                    self.holding = false;
                    self.finish()
                }
            },
            State::FallingBack(mut read) => match read.advance(reply) {
                Progress::Send => Next::Send(State::FallingBack(read)),
                Progress::Done(lookup) => self.fell_back(lookup),
            },
            State::Finished => Next::Yield(Yield::Finished, State::Finished),
        }
    }

    /// The first lookup: a hit is returned; a miss goes on to compute (through the lock when
    /// there is one).
    fn looked_up(&mut self, lookup: Lookup) -> Next<'a, V> {
        if matches!(lookup, Lookup::Unavailable) {
            tracing::debug!(
                function = self.report.info.function_name,
                "rtc: cache unavailable, bypassing it"
            );
        }
        let lock_timeout = match self.mode {
            Mode::Refresh | Mode::Revalidate { .. } => {
                self.observed = lookup.into_observed();
                return self.prepare_to_compute();
            }
            Mode::Run { lock_timeout } => lock_timeout,
        };
        let lookup = match lookup {
            Lookup::Stale(payload, observed, overdue) => {
                match self.stale_at_once(payload, observed, overdue) {
                    Ok(revalidate) => return revalidate,
                    Err(miss) => miss,
                }
            }
            lookup => lookup,
        };
        match self.decoded(lookup) {
            Ok((value, _)) => {
                self.report.info.lock_full_hit = lock_timeout.is_some();
                return Next::Yield(Yield::Cached(value), State::Finished);
            }
            Err(observed) => self.observed = observed,
        }
        match lock_timeout {
            Some(timeout) => {
                self.deadline = Instant::now() + timeout;
                Next::Then(State::Joining)
            }
            None => self.prepare_to_compute(),
        }
    }

    /// The value of a hit, with what a leader lands for its followers (nothing when this call
    /// leads none); or the versions the read observed, to stamp a computed value with.
    fn decoded(&mut self, lookup: Lookup) -> Result<(V, Landing), Option<Observed>> {
        match lookup {
            Lookup::Hit(bytes, observed) => match self.codec.decode(self.cache, &bytes) {
                Some(value) => {
                    self.report.hit(&bytes);
                    if let (Some(fill), Some(sharing)) = (self.fill.take(), self.codec.sharing()) {
                        let kept = (sharing.keep)(&value);
                        self.cache
                            .keep_decoded(fill, kept, bytes.expiry(), &observed);
                    }
                    // Only a leader has followers to hand the value to: a plain hit copies nothing.
                    let landing = match self.leader {
                        Some(_) => Landing::new(Some(bytes.into_vec()), Some(observed)),
                        None => Landing::Nothing,
                    };
                    Ok((value, landing))
                }
                None => Err(Some(observed)),
            },
            Lookup::Stale(_, observed, overdue) => {
                self.stale_seen |= fallback::within(self.windows.if_error, overdue);
                Err(Some(observed))
            }
            Lookup::Miss(observed) => Err(Some(observed)),
            Lookup::Unavailable => Err(None),
        }
    }

    /// The entry's read, dating it when the call has a stale option.
    fn read_flow(&self) -> ReadFlow<'a> {
        self.cache
            .read_flow(self.keys)
            .asking_ttl(self.windows.any())
    }

    /// Versions observed by a later read replace earlier ones; a failed read keeps them.
    fn observe(&mut self, fresh: Option<Observed>) {
        if fresh.is_some() {
            self.observed = fresh;
        }
    }

    /// Before computing: tag versions are completed first, if the backend could be read.
    fn prepare_to_compute(&mut self) -> Next<'a, V> {
        Next::Then(match self.observed.take() {
            Some(observed) => State::CreatingTags(self.cache.create_tags_flow(observed)),
            None => State::ReadyToCompute,
        })
    }

    /// After the store (or when there was nothing to store): release the lock, then land.
    fn stored(&mut self) -> Next<'a, V> {
        if self.leader.is_some() {
            self.landing = Some(Landing::new(self.computed.take(), self.observed.take()));
        }
        if self.holding {
            Next::Send(State::Releasing)
        } else {
            self.finish()
        }
    }

    /// Lands what followers receive, and ends the call; after a failure, reads the entry
    /// again first when a stale value may stand in.
    fn finish(&mut self) -> Next<'a, V> {
        if self.falls_back() {
            self.fell_back = true;
            return Next::Then(State::FallingBack(self.read_flow()));
        }
        self.land();
        Next::Yield(Yield::Finished, State::Finished)
    }

    fn land(&mut self) {
        if let Some(leader) = self.leader.take() {
            leader.land(self.landing.take().unwrap_or(Landing::Nothing));
        }
    }

    /// A decorated call is exactly one hit (a value without computing: from the cache, or from
    /// another caller) or one miss (it computes), whatever path it took and on every backend;
    /// `refresh_<fn>` is neither. Lock waits are counted on the side.
    fn count(&self, output: &Yield<V>) {
        let counters = self.cache.counters();
        match (output, self.mode) {
            (_, Mode::Refresh | Mode::Revalidate { .. }) => {}
            (Yield::Cached(_) | Yield::Revalidate(..), _) => counters.hits.bump(),
            (Yield::Compute, _) => counters.misses.bump(),
            // Counted as a miss when it computed.
            (Yield::Instead(_), _) => {}
            (Yield::Follow(..) | Yield::Finished, _) => {}
        }
    }

    /// Returns a value without computing: lands it for followers first.
    fn cached(&mut self, value: V, landing: Landing) -> Next<'a, V> {
        if let Some(leader) = self.leader.take() {
            leader.land(landing);
        }
        Next::Yield(Yield::Cached(value), State::Finished)
    }
}

impl<V> Flow for CallFlow<'_, V> {
    type Output = Yield<V>;

    fn advance(&mut self, reply: Option<Received>) -> Progress<Yield<V>> {
        let mut reply = reply;
        loop {
            let state = std::mem::replace(&mut self.state, State::Finished);
            match self.handle(state, reply.take()) {
                Next::Then(state) => self.state = state,
                Next::Send(state) => {
                    self.state = state;
                    return Progress::Send;
                }
                Next::Yield(output, state) => {
                    self.state = state;
                    self.count(&output);
                    return Progress::Done(output);
                }
            }
        }
    }

    fn operation(&self) -> Option<Operation<'_>> {
        match &self.state {
            State::Looking(read)
            | State::Rechecking(read)
            | State::Completing { read, .. }
            | State::FallingBack(read) => read.operation(),
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
                    ttl: self.windows.any(),
                })
            }
            State::Waiting { timeout, .. } => Some(Operation::WaitForWake {
                lock: &self.lock.as_ref()?.keys,
                timeout: *timeout,
            }),
            State::Storing => Some(self.cache.write_observed_operation(
                &self.keys.entry,
                self.observed.as_ref()?,
                self.computed.as_deref()?,
                self.lifetime,
                self.windows.stored(),
            )),
            State::ReleasingAfterHit(_) | State::Releasing => Some(self.lock.as_ref()?.release()),
            State::Start
            | State::Joining
            | State::Following { .. }
            | State::ReadyToCompute
            | State::Computing
            | State::Finished => None,
        }
    }
}

#[cfg(test)]
mod tests;
