//! `lock = true`: one computation per cold entry, in this process and across processes.
//!
//! In the process, callers of the same entry coalesce on one leader (`flights`); the others
//! follow, and take the leader's value if its stamp is fresh for them. The leader then takes the
//! entry's Redis lock (`SET lock token NX GET PX timeout`, the entry read in the same round trip).
//! Its holder computes, stores, and releases the lock with a script that pushes its token on the
//! entry's wake list. Waiters in other processes block on that list (`BLPOP`) until the holder's
//! token arrives, the lock expires, or their own `lock_timeout` passes; a woken waiter passes the
//! token on, then reads the value. Any Redis error ends the protocol for that caller, who
//! computes by itself (fail open).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CallFlow, Counted, HeldLock, Host, Mode, Next, State, Yield};
use crate::cache::flights::{Flight, Joined, Landing};
use crate::engine::{Lookup, ReadFlow, Received, Reply};
use crate::format::unique_u64;

/// Waiters wake this long after the lock's expiry, so that it has expired when they retry.
pub(super) const EXPIRY_MARGIN: Duration = Duration::from_millis(20);

impl<'a, V, H: Host> CallFlow<'a, V, H> {
    /// Leads this process's computation of the entry, or follows the caller who does.
    pub(super) fn join(&mut self, now: Instant) -> Next<'a, V> {
        match self.host.join_flight(&self.keys.entry) {
            Joined::Leader(leader) => {
                self.leader = Some(leader);
                self.lead()
            }
            Joined::Follower(flight) => {
                let since = self.start_waiting(now);
                let following = State::Following {
                    flight: Arc::clone(&flight),
                    since,
                };
                Next::Yield(Yield::Follow(flight, self.deadline), following)
            }
        }
    }

    /// This process's leader (a refresh's from its start): take the Redis lock with the read,
    /// or, alone with the backend or without the lock, read again.
    pub(super) fn lead(&mut self) -> Next<'a, V> {
        let lock_timeout = match self.mode {
            Mode::Run { lock_timeout } | Mode::Revalidate { lock_timeout } => lock_timeout,
            Mode::Refresh => None,
        };
        let lifetime = match lock_timeout {
            // One process is all there is (a leader may have landed just before), or a refresh
            // without the lock: read again.
            Some(lifetime) if self.host.shared() => lifetime,
            _ => return Next::Then(State::Rechecking(self.read_flow())),
        };
        self.lock = Some(HeldLock {
            keys: self.host.key_space().lock(&self.keys.entry),
            token: unique_u64().to_le_bytes(),
            lifetime,
        });
        Next::Send(State::Acquiring)
    }

    /// A leader alone with its backend read again.
    pub(super) fn rechecked(&mut self, lookup: Lookup) -> Next<'a, V> {
        match self.decoded(lookup) {
            Ok((value, landing)) => return self.cached(value, landing),
            Err(fresh) => self.observe(fresh),
        }
        self.report.info.lock_full_miss = true;
        self.prepare_to_compute()
    }

    /// What `Acquire` found: the lock (or its holder), and the entry's read to finish.
    pub(super) fn acquired(&mut self, reply: Option<Received>) -> Next<'a, V> {
        match reply.map(|reply| reply.and_then(Reply::into_lock)) {
            Some(Ok(attempt)) => {
                self.holding = attempt.holder.is_none();
                let read = ReadFlow::completing(self.host.key_space(), self.keys, attempt.read);
                Next::Then(State::Completing {
                    read,
                    holder: attempt.holder,
                    lock_ttl: attempt.lock_ttl,
                })
            }
            Some(Err(_)) => self.prepare_to_compute(),
            None => Next::Send(State::Acquiring),
        }
    }

    /// The read that came with `Acquire`: a value after all, or compute (holding the lock), or
    /// wait for its holder.
    pub(super) fn completed(
        &mut self,
        lookup: Lookup,
        holder: Option<Vec<u8>>,
        lock_ttl: Duration,
        now: Instant,
    ) -> Next<'a, V> {
        match self.decoded(lookup) {
            Ok((value, landing)) if self.holding => {
                self.landing = Some(landing);
                return Next::Send(State::ReleasingAfterHit(value));
            }
            Ok((value, landing)) => return self.cached(value, landing),
            Err(fresh) => self.observe(fresh),
        }
        match holder {
            None => {
                self.report.info.lock_full_miss = true;
                self.prepare_to_compute()
            }
            // Another process refreshes the entry.
            Some(_) if matches!(self.mode, Mode::Revalidate { .. }) => self.finish(),
            Some(holder) => {
                let since = self.start_waiting(now);
                self.wait(holder, now + lock_ttl, since, now)
            }
        }
    }

    /// A waiter whose lock's holder is elsewhere: block on the wake list, or give up.
    fn wait(
        &mut self,
        holder: Vec<u8>,
        expires: Instant,
        since: Instant,
        now: Instant,
    ) -> Next<'a, V> {
        match wait_timeout(expires, self.deadline, now) {
            Some(timeout) => Next::Send(State::Waiting {
                holder,
                expires,
                since,
                timeout,
            }),
            None => {
                self.report.waited(since, now);
                self.prepare_to_compute()
            }
        }
    }

    /// What the wait on the wake list returned.
    pub(super) fn woken(
        &mut self,
        reply: Option<Received>,
        holder: Vec<u8>,
        expires: Instant,
        since: Instant,
        timeout: Duration,
        now: Instant,
    ) -> Next<'a, V> {
        match reply.map(|reply| reply.and_then(Reply::into_woken)) {
            None => Next::Send(State::Waiting {
                holder,
                expires,
                since,
                timeout,
            }),
            // The holder finished: pass its token on, and read the entry again.
            Some(Ok(Some(token))) if token == holder => {
                self.report.waited(since, now);
                self.baton = Some(token);
                Next::Send(State::Acquiring)
            }
            // An earlier holder's token: dropped; wait for what is left of this lock.
            Some(Ok(Some(_))) => self.wait(holder, expires, since, now),
            // The lock expired: try to take it.
            Some(Ok(None)) if now < self.deadline => {
                self.report.waited(since, now);
                Next::Send(State::Acquiring)
            }
            // This caller's `lock_timeout` passed, or Redis failed: compute without the lock.
            Some(_) => {
                self.report.waited(since, now);
                self.prepare_to_compute()
            }
        }
    }

    /// What a follower's leader landed: its value if this follower admits its stamp (the leader
    /// may have started before an invalidation this follower saw), else go round again (maybe
    /// as the new leader), or compute alone once the deadline has passed.
    pub(super) fn followed(
        &mut self,
        flight: Arc<Flight>,
        since: Instant,
        now: Instant,
    ) -> Next<'a, V> {
        let Some(landing) = self.landed.take() else {
            let following = State::Following {
                flight: Arc::clone(&flight),
                since,
            };
            return Next::Yield(Yield::Follow(flight, self.deadline), following);
        };
        self.report.waited(since, now);
        let shared = landing
            .as_ref()
            .and_then(|landing| landing.value_for(self.observed.as_ref(), self.report.started))
            .and_then(|bytes| {
                self.host
                    .decode(self.codec, bytes)
                    .map(|value| (value, bytes))
            });
        if let Some((value, bytes)) = shared {
            self.report.hit(bytes);
            if landing.as_ref().is_some_and(Landing::is_stale) {
                self.served_stale();
            }
            return Next::Yield(Yield::Cached(value), State::Finished);
        }
        if landing.is_some() && now < self.deadline {
            // A value this follower could not judge, having seen a tag without a version (not
            // yet created, or lost): the leader stored it, so the entry is read again and its
            // stamp checked against the versions now.
            if landing.as_ref().is_some_and(Landing::has_value) && self.saw_a_tag_without_version()
            {
                return Next::Then(State::Rereading(self.read_flow()));
            }
            Next::Then(State::Joining)
        } else {
            self.prepare_to_compute()
        }
    }

    /// What a follower's own read found: the value, or go round again (or compute alone once
    /// the deadline has passed).
    pub(super) fn reread(&mut self, lookup: Lookup, now: Instant) -> Next<'a, V> {
        match self.decoded(lookup) {
            Ok((value, _)) => return Next::Yield(Yield::Cached(value), State::Finished),
            Err(fresh) => self.observe(fresh),
        }
        match now < self.deadline {
            true => Next::Then(State::Joining),
            false => self.prepare_to_compute(),
        }
    }

    fn saw_a_tag_without_version(&self) -> bool {
        self.observed
            .as_ref()
            .is_some_and(|observed| observed.all().any(|(_, version)| version.is_none()))
    }

    fn start_waiting(&self, now: Instant) -> Instant {
        self.host
            .count(Counted::LockWait(self.report.info.function_name));
        tracing::debug!(
            function = self.report.info.function_name,
            "rtc: waiting for another caller's computation"
        );
        now
    }
}

/// How long to block on the wake list: until the lock expires (what is left of it) or the
/// deadline, whichever is first.
fn wait_timeout(expires: Instant, deadline: Instant, now: Instant) -> Option<Duration> {
    let left = deadline.checked_duration_since(now)?;
    let lock_left = expires.saturating_duration_since(now) + EXPIRY_MARGIN;
    (!left.is_zero()).then(|| left.min(lock_left))
}
