//! `lock = true`: one computation per cold entry, in this process and across processes.
//!
//! In the process, callers of the same entry coalesce on one [`Flights`](crate::flights) leader.
//! The leader then takes the entry's Redis lock (`SET lock token NX GET PX timeout`, read of the
//! entry in the same round trip). Its holder computes, stores, and releases the lock with a script
//! that pushes its token on the entry's wake list. Waiters in other processes block on that list
//! (`BLPOP`) until the holder's token arrives, the lock expires, or their own `lock_timeout`
//! passes; a woken waiter pushes the token back for the next one, then reads the value. Any Redis
//! error ends the protocol for that caller, who computes by itself (fail open).

use std::time::{Duration, Instant};

use super::outcome::{Codec, Outcome};
use super::{Call, Report, Target};
use crate::backend::{BackendError, LockAttempt, RedisStore};
use crate::entry::Observed;
use crate::flights::{Joined, Landing};
use crate::keys::LockKeys;
use crate::request::Lookup;
use crate::stats::Counters;
use crate::version::unique_u64;

/// Waiters wake this long after the lock's expiry, so that it has expired when they retry.
const EXPIRY_MARGIN: Duration = Duration::from_millis(20);

/// What a caller does after waiting for the lock's holder.
enum AfterWait {
    /// The holder finished: pass its token on and read the entry again.
    Woken(Vec<u8>),
    /// The lock expired: try to take it.
    Expired,
    /// This caller's `lock_timeout` passed, or Redis failed: compute without the lock.
    GiveUp,
}

impl Call<'_> {
    pub(super) fn run_locked<R: Outcome>(
        &self,
        target: &Target<'_>,
        codec: Codec<R::Value>,
        compute: impl FnOnce() -> R,
        observed: Option<Observed>,
        mut report: Report,
    ) -> R {
        let deadline = Instant::now() + self.lock_timeout;
        loop {
            match target.cache.flights().join(&target.request.entry) {
                Joined::Leader(leader) => {
                    let (outcome, landing) =
                        self.lead(target, &codec, compute, observed, deadline, &mut report);
                    leader.land(landing);
                    return self.finish(target, report, outcome);
                }
                Joined::Follower(flight) => {
                    let waited = self.start_waiting(target);
                    let landing = flight.wait(deadline);
                    report.waited(waited);
                    match self.followed(landing, &codec, &mut report, deadline, observed.as_ref()) {
                        None => {}
                        Some(Ok(outcome)) => return self.finish(target, report, outcome),
                        Some(Err(GaveUp)) => {
                            let (outcome, _) = self.compute_and_store(
                                target,
                                &codec,
                                compute,
                                observed,
                                &mut report,
                            );
                            return self.finish(target, report, outcome);
                        }
                    }
                }
            }
        }
    }

    pub(super) async fn run_locked_async<R: Outcome>(
        &self,
        target: &Target<'_>,
        codec: Codec<R::Value>,
        compute: impl std::future::Future<Output = R>,
        observed: Option<Observed>,
        mut report: Report,
    ) -> R {
        let deadline = Instant::now() + self.lock_timeout;
        loop {
            match target.cache.flights().join(&target.request.entry) {
                Joined::Leader(leader) => {
                    let (outcome, landing) = self
                        .lead_async(target, &codec, compute, observed, deadline, &mut report)
                        .await;
                    leader.land(landing);
                    return self.finish(target, report, outcome);
                }
                Joined::Follower(flight) => {
                    let waited = self.start_waiting(target);
                    let landing = flight.wait_async(deadline).await;
                    report.waited(waited);
                    if let Some(outcome) =
                        self.followed(landing, &codec, &mut report, deadline, observed.as_ref())
                    {
                        match outcome {
                            Ok(outcome) => return self.finish(target, report, outcome),
                            Err(GaveUp) => {
                                let (outcome, _) = self
                                    .compute_and_store_async(
                                        target,
                                        &codec,
                                        compute,
                                        observed,
                                        &mut report,
                                    )
                                    .await;
                                return self.finish(target, report, outcome);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The leader's part: the cross-process lock, then the computation.
    fn lead<R: Outcome>(
        &self,
        target: &Target<'_>,
        codec: &Codec<R::Value>,
        compute: impl FnOnce() -> R,
        mut observed: Option<Observed>,
        deadline: Instant,
        report: &mut Report,
    ) -> (R, Landing) {
        let cache = target.cache;
        let Some(store) = cache.backend().shared() else {
            // One process is all there is; a leader may have landed just before this one joined.
            match self.recheck(cache.lookup(&target.request), codec, report) {
                Ok(hit) => return hit,
                Err(fresh) => observed = fresh.or(observed),
            }
            report.info.lock_full_miss = true;
            return self.compute_and_store(target, codec, compute, observed, report);
        };
        let keys = cache.lock_keys(&target.request);
        let token = unique_u64().to_le_bytes();
        let tags = target.request.tags();
        let mut baton: Option<Vec<u8>> = None;
        loop {
            let read = (target.request.entry.as_str(), tags);
            let attempt = match store.acquire(
                &keys,
                &token,
                self.lock_timeout,
                baton.take().as_deref(),
                read,
            ) {
                Ok(attempt) => attempt,
                Err(error) => {
                    cache.lock_trouble(&error);
                    return self.compute_and_store(target, codec, compute, observed, report);
                }
            };
            let mine = attempt.holder.is_none();
            let lookup = cache.complete_lookup(&target.request, attempt.read);
            match self.recheck(lookup, codec, report) {
                Ok(hit) => {
                    if mine {
                        self.release(store, &keys, &token, target);
                    }
                    return hit;
                }
                Err(fresh) => observed = fresh.or(observed),
            }
            let Some(holder) = attempt.holder else {
                report.info.lock_full_miss = true;
                let result = self.compute_and_store(target, codec, compute, observed, report);
                self.release(store, &keys, &token, target);
                return result;
            };
            let waited = self.start_waiting(target);
            let after =
                self.wait_for_holder(store, &keys, &holder, attempt.lock_ttl, deadline, target);
            report.waited(waited);
            match after {
                AfterWait::Woken(token) => baton = Some(token),
                AfterWait::Expired => {}
                AfterWait::GiveUp => {
                    return self.compute_and_store(target, codec, compute, observed, report)
                }
            }
        }
    }

    async fn lead_async<R: Outcome>(
        &self,
        target: &Target<'_>,
        codec: &Codec<R::Value>,
        compute: impl std::future::Future<Output = R>,
        mut observed: Option<Observed>,
        deadline: Instant,
        report: &mut Report,
    ) -> (R, Landing) {
        let cache = target.cache;
        let Some(store) = cache.backend().shared() else {
            match self.recheck(cache.lookup_async(&target.request).await, codec, report) {
                Ok(hit) => return hit,
                Err(fresh) => observed = fresh.or(observed),
            }
            report.info.lock_full_miss = true;
            return self
                .compute_and_store_async(target, codec, compute, observed, report)
                .await;
        };
        let keys = cache.lock_keys(&target.request);
        let token = unique_u64().to_le_bytes();
        let tags = target.request.tags();
        let mut baton: Option<Vec<u8>> = None;
        loop {
            let read = (target.request.entry.as_str(), tags);
            let attempt: Result<LockAttempt, BackendError> = store
                .acquire_async(
                    &keys,
                    &token,
                    self.lock_timeout,
                    baton.take().as_deref(),
                    read,
                )
                .await;
            let attempt = match attempt {
                Ok(attempt) => attempt,
                Err(error) => {
                    cache.lock_trouble(&error);
                    return self
                        .compute_and_store_async(target, codec, compute, observed, report)
                        .await;
                }
            };
            let mine = attempt.holder.is_none();
            let lookup = cache
                .complete_lookup_async(&target.request, attempt.read)
                .await;
            match self.recheck(lookup, codec, report) {
                Ok(hit) => {
                    if mine {
                        self.release_async(store, &keys, &token, target).await;
                    }
                    return hit;
                }
                Err(fresh) => observed = fresh.or(observed),
            }
            let Some(holder) = attempt.holder else {
                report.info.lock_full_miss = true;
                let result = self
                    .compute_and_store_async(target, codec, compute, observed, report)
                    .await;
                self.release_async(store, &keys, &token, target).await;
                return result;
            };
            let waited = self.start_waiting(target);
            let after = self
                .wait_for_holder_async(store, &keys, &holder, attempt.lock_ttl, deadline, target)
                .await;
            report.waited(waited);
            match after {
                AfterWait::Woken(token) => baton = Some(token),
                AfterWait::Expired => {}
                AfterWait::GiveUp => {
                    return self
                        .compute_and_store_async(target, codec, compute, observed, report)
                        .await
                }
            }
        }
    }

    fn wait_for_holder(
        &self,
        store: &RedisStore,
        keys: &LockKeys,
        holder: &[u8],
        lock_ttl: Duration,
        deadline: Instant,
        target: &Target<'_>,
    ) -> AfterWait {
        loop {
            let Some(timeout) = wait_timeout(lock_ttl, deadline) else {
                return AfterWait::GiveUp;
            };
            match store.wait_for_wake(keys, timeout) {
                Ok(Some(token)) if token == holder => return AfterWait::Woken(token),
                Ok(Some(_)) => {} // an earlier holder's token: dropped, keep waiting
                Ok(None) => return expired_or_late(deadline),
                Err(error) => {
                    target.cache.lock_trouble(&error);
                    return AfterWait::GiveUp;
                }
            }
        }
    }

    async fn wait_for_holder_async(
        &self,
        store: &RedisStore,
        keys: &LockKeys,
        holder: &[u8],
        lock_ttl: Duration,
        deadline: Instant,
        target: &Target<'_>,
    ) -> AfterWait {
        loop {
            let Some(timeout) = wait_timeout(lock_ttl, deadline) else {
                return AfterWait::GiveUp;
            };
            match store.wait_for_wake_async(keys, timeout).await {
                Ok(Some(token)) if token == holder => return AfterWait::Woken(token),
                Ok(Some(_)) => {}
                Ok(None) => return expired_or_late(deadline),
                Err(error) => {
                    target.cache.lock_trouble(&error);
                    return AfterWait::GiveUp;
                }
            }
        }
    }

    fn release(&self, store: &RedisStore, keys: &LockKeys, token: &[u8], target: &Target<'_>) {
        if let Err(error) = store.release(keys, token, self.lock_timeout) {
            target.cache.lock_trouble(&error);
        }
    }

    async fn release_async(
        &self,
        store: &RedisStore,
        keys: &LockKeys,
        token: &[u8],
        target: &Target<'_>,
    ) {
        if let Err(error) = store.release_async(keys, token, self.lock_timeout).await {
            target.cache.lock_trouble(&error);
        }
    }

    /// A hit decoded (with the bytes to land for followers), or the versions to stamp a
    /// computed value with.
    #[allow(clippy::type_complexity)]
    fn recheck<R: Outcome>(
        &self,
        lookup: Lookup,
        codec: &Codec<R::Value>,
        report: &mut Report,
    ) -> Result<(R, Landing), Option<Observed>> {
        match lookup {
            Lookup::Hit(bytes, observed) => match (codec.decode)(&bytes) {
                Some(value) => {
                    report.hit(bytes.len());
                    Ok((
                        R::from_cached(value),
                        Landing::new(Some(bytes.into_vec()), Some(observed)),
                    ))
                }
                None => Err(Some(observed)),
            },
            Lookup::Miss(observed) => Err(Some(observed)),
            Lookup::Unavailable => Err(None),
        }
    }

    /// What a follower does with what its leader landed: `Some(Ok)` the shared value (when it is
    /// fresh for this follower: the leader may have started before an invalidation that this
    /// follower saw), `Some(Err)` compute by itself, `None` try again (maybe as the new leader).
    fn followed<R: Outcome>(
        &self,
        landing: Option<Landing>,
        codec: &Codec<R::Value>,
        report: &mut Report,
        deadline: Instant,
        observed: Option<&Observed>,
    ) -> Option<Result<R, GaveUp>> {
        if let Some(bytes) = landing
            .as_ref()
            .and_then(|landing| landing.value_for(observed))
        {
            if let Some(value) = (codec.decode)(bytes) {
                report.hit(bytes.len());
                return Some(Ok(R::from_cached(value)));
            }
        }
        if landing.is_some() && Instant::now() < deadline {
            return None;
        }
        Some(Err(GaveUp))
    }

    fn start_waiting(&self, target: &Target<'_>) -> Instant {
        Counters::bump(&target.cache.counters().lock_waits);
        tracing::debug!(
            function = self.site.function_name,
            "rtc: waiting for another caller's computation"
        );
        Instant::now()
    }
}

/// A follower waited for its whole `lock_timeout` and computes by itself.
struct GaveUp;

/// How long to block on the wake list: until the lock expires or the deadline, whichever is first.
fn wait_timeout(lock_ttl: Duration, deadline: Instant) -> Option<Duration> {
    let left = deadline.checked_duration_since(Instant::now())?;
    (!left.is_zero()).then(|| left.min(lock_ttl + EXPIRY_MARGIN))
}

fn expired_or_late(deadline: Instant) -> AfterWait {
    if Instant::now() < deadline {
        AfterWait::Expired
    } else {
        AfterWait::GiveUp
    }
}
