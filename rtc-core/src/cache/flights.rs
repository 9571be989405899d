//! In-process coalescing: concurrent callers of the same entry share one computation.
//!
//! The first caller of an entry becomes its leader; the others follow, waiting (threads on a
//! condition variable, tasks on a `Notify`, so no runtime worker is blocked) until the leader lands
//! the serialized value, or nothing when it could not produce a cacheable one. A leader that
//! panics or is dropped mid-way lands nothing, so followers never wait for a dead computation.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use futures_util::future::{select, Either};

use crate::format::Observed;

/// What a leader left for its followers.
#[derive(Clone, Debug)]
pub(crate) enum Landing {
    /// The value, as the codec wrote it, and the tag versions it was stamped with (read before
    /// it was computed; `None` when the backend could not be read). A follower takes the value
    /// only if its own reading of the versions admits that stamp (see [`Observed::admits`]).
    Value {
        bytes: Arc<Vec<u8>>,
        stamp: Option<Arc<Observed>>,
        /// True for an entry past its lifetime that the leader returned after its function
        /// failed (`stale_if_error`): its followers return it too, rather than failing in turn.
        stale: bool,
        /// When its computation started, for a value with no stamp (the backend could not be
        /// read): a follower that could not read either takes it only if it started no later
        /// (an invalidation may have returned between the two).
        since: Option<Instant>,
    },
    /// No value to share: followers go on by themselves.
    Nothing,
}

impl Landing {
    /// What a computation leaves: its bytes (if it produced a cacheable value) and their stamp.
    pub(crate) fn new(bytes: Option<Vec<u8>>, stamp: Option<Observed>) -> Self {
        match bytes {
            Some(bytes) => Landing::Value {
                bytes: Arc::new(bytes),
                stamp: stamp.map(Arc::new),
                stale: false,
                since: None,
            },
            None => Landing::Nothing,
        }
    }

    /// What a computation that started at `since` leaves: as [`Landing::new`], dated for
    /// followers that cannot judge a missing stamp otherwise.
    pub(crate) fn computed(
        bytes: Option<Vec<u8>>,
        stamp: Option<Observed>,
        since: Instant,
    ) -> Self {
        let mut landing = Self::new(bytes, stamp);
        if let Landing::Value { since: at, .. } = &mut landing {
            *at = Some(since);
        }
        landing
    }

    /// A stale value the leader returned instead of its failed computation's.
    pub(crate) fn stale(bytes: Vec<u8>, stamp: Observed) -> Self {
        Landing::Value {
            bytes: Arc::new(bytes),
            stamp: Some(Arc::new(stamp)),
            stale: true,
            since: None,
        }
    }

    /// True when it carries a value.
    pub(crate) fn has_value(&self) -> bool {
        matches!(self, Landing::Value { .. })
    }

    /// True for a stale value.
    pub(crate) fn is_stale(&self) -> bool {
        matches!(self, Landing::Value { stale: true, .. })
    }

    /// The value's bytes, if `observed` (a follower's reading of the versions) admits its stamp;
    /// when neither could read the versions, if its computation started no earlier than the
    /// follower's call (`started`): one that started before may predate an invalidation that
    /// returned before the follower's call began (the simulator's seed 73,025 of 100,000).
    pub(crate) fn value_for(&self, observed: Option<&Observed>, started: Instant) -> Option<&[u8]> {
        let Landing::Value {
            bytes,
            stamp,
            since,
            ..
        } = self
        else {
            return None;
        };
        let admitted = match (observed, stamp) {
            (Some(observed), Some(stamp)) => observed.admits(stamp),
            (None, None) => since.is_some_and(|since| since >= started),
            _ => false,
        };
        // The simulator's `lock` mutant: a waiter takes the value whatever its stamp.
        #[cfg(feature = "simulation")]
        let admitted = admitted || crate::mutants::active(crate::mutants::Mutant::Lock);
        admitted.then_some(bytes.as_slice())
    }
}

#[derive(Debug, Default)]
pub(crate) struct Flight {
    landing: Mutex<Option<Landing>>,
    landed: Condvar,
    notify: tokio::sync::Notify,
}

impl Flight {
    fn landing(&self) -> MutexGuard<'_, Option<Landing>> {
        self.landing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn land(&self, landing: Landing) {
        *self.landing() = Some(landing);
        self.landed.notify_all();
        self.notify.notify_waiters();
    }

    /// What the leader landed, if it has: a simulator's look that never waits.
    #[cfg(feature = "simulation")]
    pub(crate) fn landed(&self) -> Option<Landing> {
        self.landing().clone()
    }

    /// Blocks the thread until the leader lands, or `deadline` passes (`None`).
    pub(crate) fn wait(&self, deadline: Instant) -> Option<Landing> {
        let mut landing = self.landing();
        loop {
            if let Some(landed) = landing.as_ref() {
                return Some(landed.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            landing = self
                .landed
                .wait_timeout(landing, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits (without blocking the executor) until the leader lands, or `deadline` passes
    /// (`None`). Works on any executor: the deadline is kept by a timer thread, not a runtime's.
    pub(crate) async fn wait_async(&self, deadline: Instant) -> Option<Landing> {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a landing between the two is not missed.
            notified.as_mut().enable();
            if let Some(landed) = self.landing().as_ref() {
                return Some(landed.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let timer = futures_timer::Delay::new(left);
            if let Either::Right(_) = select(notified, timer).await {
                return self.landing().clone();
            }
        }
    }
}

/// The computations in flight in this process, by entry key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    /// Shared with the leaders, so that a leader can be handed to another thread (a background
    /// refresh) and still take its flight off the map when it lands.
    in_flight: Arc<InFlight>,
}

type InFlight = Mutex<HashMap<String, Arc<Flight>>>;

/// A caller's role for one entry.
pub(crate) enum Joined {
    Leader(Leader),
    Follower(Arc<Flight>),
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Joined {
        let mut in_flight = locked(&self.in_flight);
        if let Some(flight) = in_flight.get(key) {
            return Joined::Follower(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::default());
        in_flight.insert(key.to_owned(), Arc::clone(&flight));
        Joined::Leader(Leader {
            in_flight: Arc::clone(&self.in_flight),
            key: key.to_owned(),
            flight,
            landed: false,
        })
    }
}

fn locked(in_flight: &InFlight) -> MutexGuard<'_, HashMap<String, Arc<Flight>>> {
    in_flight.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The caller computing an entry for the whole process; owned, so that it may be handed to the
/// thread or task that computes. Dropping it without landing (a panic, a cancelled future, a
/// refresh that never started) lands [`Landing::Nothing`].
pub(crate) struct Leader {
    in_flight: Arc<InFlight>,
    key: String,
    flight: Arc<Flight>,
    landed: bool,
}

impl Leader {
    pub(crate) fn land(mut self, landing: Landing) {
        self.finish(landing);
    }

    fn finish(&mut self, landing: Landing) {
        self.landed = true;
        locked(&self.in_flight).remove(&self.key);
        self.flight.land(landing);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.landed {
            self.finish(Landing::Nothing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn followers_receive_what_the_leader_lands() {
        let flights = Flights::default();
        let Joined::Leader(leader) = flights.join("k") else {
            panic!("the first caller leads");
        };
        let Joined::Follower(flight) = flights.join("k") else {
            panic!("the second caller follows");
        };
        let started = Instant::now();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| flight.wait(Instant::now() + Duration::from_secs(5)));
            leader.land(Landing::computed(Some(b"v".to_vec()), None, started));
            let landed = waiter.join().unwrap().expect("landed");
            assert_eq!(landed.value_for(None, started), Some(&b"v"[..]));
        });
        assert!(
            matches!(flights.join("k"), Joined::Leader(_)),
            "a landed flight is gone"
        );
    }

    /// When neither the leader nor the follower could read the versions, the follower takes
    /// the value only from a computation that started no earlier than its own call: one that
    /// started before may predate an invalidation that returned before the follower began.
    #[test]
    fn an_unstamped_value_goes_only_to_followers_that_started_before_its_computation() {
        let follower_before = Instant::now();
        let computing = follower_before + Duration::from_millis(5);
        let follower_after = computing + Duration::from_millis(5);
        let landed = Landing::computed(Some(b"v".to_vec()), None, computing);
        assert_eq!(landed.value_for(None, follower_before), Some(&b"v"[..]));
        assert_eq!(landed.value_for(None, computing), Some(&b"v"[..]));
        assert_eq!(landed.value_for(None, follower_after), None);
        // Undated: no follower can judge it.
        let undated = Landing::new(Some(b"v".to_vec()), None);
        assert_eq!(undated.value_for(None, follower_before), None);
    }

    #[test]
    fn a_dropped_leader_lands_nothing() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Joined::Follower(flight) = flights.join("k") else {
            panic!("the second caller follows");
        };
        drop(leader);
        assert!(matches!(
            flight.wait(Instant::now()),
            Some(Landing::Nothing)
        ));
    }

    #[test]
    fn a_leader_handed_to_another_thread_lands_there() {
        let flights = Flights::default();
        let Joined::Leader(leader) = flights.join("k") else {
            panic!("the first caller leads");
        };
        let Joined::Follower(flight) = flights.join("k") else {
            panic!("the second caller follows");
        };
        let started = Instant::now();
        std::thread::spawn(move || {
            leader.land(Landing::computed(Some(b"v".to_vec()), None, started))
        })
        .join()
        .unwrap();
        let landed = flight.wait(Instant::now()).expect("landed");
        assert_eq!(landed.value_for(None, started), Some(&b"v"[..]));
        assert!(
            matches!(flights.join("k"), Joined::Leader(_)),
            "a landed flight is gone"
        );
    }

    #[test]
    fn a_follower_gives_up_at_its_deadline() {
        let flights = Flights::default();
        let _leader = flights.join("k");
        let Joined::Follower(flight) = flights.join("k") else {
            panic!("the second caller follows");
        };
        assert!(flight
            .wait(Instant::now() + Duration::from_millis(20))
            .is_none());
    }
}
