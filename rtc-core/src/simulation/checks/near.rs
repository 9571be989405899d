//! Promise 5, the near cache (RELIABILITY.md), checked at every near hit:
//!
//! - **(d) A near hit never serves what Redis announced changed before that hit.** Each
//!   process has its own floors: a data version is the floor of its slot in a process once
//!   the process's tracking session has applied the message announcing the change that made
//!   it current (a tag's or the namespace's invalidation, an entry's delete; a flush makes
//!   every version current at the time its floor), once the process's own invalidation of it
//!   has returned (the same process sees its own change at once), and, when tracking comes
//!   back after a disconnect, for every version the server had made current when it ran
//!   `TRACKING ON` (what was said on the lost connection is covered by dropping everything).
//!   A near hit must return data at least at its process's floors. (Another process's
//!   invalidation that returned but whose message has not arrived is the window promise 2
//!   leaves the near cache, bounded by the message's delay.)
//! - **(d), by identity: a near answer comes from a read that Redis ran after every change
//!   to a key it depends on that was announced to the process before the answer.** The
//!   server's operations are numbered as it runs them; each process knows, for each entry,
//!   the number of the latest change to one of the entry's keys (entry key, tag keys) it has
//!   been told of (a message applied, a write of its own returned, tracking back on: then every
//!   change so far), and the number of the latest read of the entry whose value one of its
//!   calls returned (a near entry is kept from such a read, so the one a near answer comes
//!   from is no later). A near answer while the latter is below the former served a value
//!   read before a change the process had been told of. This also sees what data versions
//!   cannot: a flush (the data did not change), an entry rewritten (with the same data).
//! - **Nothing is served near between a disconnect and tracking's return**: from the moment
//!   the session learns that its connection is gone (or its process starts) until it has the
//!   reply to `TRACKING ON` on a new one.
//! - **A near entry never outlives its entry in Redis, nor the maximum age**: no near hit on
//!   an entry whose last write has expired in Redis by its lifetime (a change that Redis
//!   announces, a delete or a flush, is the first rule's), nor once `near_cache_max_age` has
//!   passed since the latest read of the entry whose value a call of the process returned
//!   (a near entry's age counts from before its read was sent).

use std::time::{Duration, Instant};

/// What the near checker knows: each process's floors, and when each entry's last write
/// expires in Redis.
pub(in crate::simulation) struct NearChecker {
    /// By process, by slot (the tags', then each entry's own).
    floors: Vec<Vec<u64>>,
    /// By entry: when the value last written expires (`None`: no write since it was deleted
    /// or lost, or none at all).
    expires: Vec<Option<Instant>>,
    /// By process, by entry: the number of the latest change to one of the entry's keys the
    /// process has been told of, and when it was told.
    told: Vec<Vec<(u64, Option<Instant>)>>,
    /// Where the trace's times count from.
    origin: Instant,
    /// By process, by entry: the number of the latest read of the entry whose value a call of
    /// the process returned, and when the server ran it.
    read: Vec<Vec<(u64, Option<Instant>)>>,
}

impl NearChecker {
    pub(in crate::simulation) fn new(
        processes: usize,
        slots: usize,
        entries: usize,
        origin: Instant,
    ) -> Self {
        Self {
            origin,
            floors: vec![vec![0; slots]; processes],
            expires: vec![None; entries],
            told: vec![vec![(0, None); entries]; processes],
            read: vec![vec![(0, None); entries]; processes],
        }
    }

    /// `process` was told, `at`, of the change numbered `change`, to a key of each of
    /// `entries`.
    pub(in crate::simulation) fn told(
        &mut self,
        process: usize,
        entries: impl IntoIterator<Item = usize>,
        change: u64,
        at: Instant,
    ) {
        for entry in entries {
            let told = &mut self.told[process][entry];
            if change > told.0 {
                *told = (change, Some(at));
            }
        }
    }

    /// A call of `process` returned the value of `entry` that the read numbered `read`, run
    /// `at`, found.
    pub(in crate::simulation) fn read(
        &mut self,
        process: usize,
        entry: usize,
        read: u64,
        at: Instant,
    ) {
        let latest = &mut self.read[process][entry];
        if read > latest.0 {
            *latest = (read, Some(at));
        }
    }

    /// `process` learned of the changes that made these versions (slot, version) current.
    pub(in crate::simulation) fn learned(&mut self, process: usize, versions: &[(usize, u64)]) {
        let floors = &mut self.floors[process];
        for &(slot, version) in versions {
            floors[slot] = floors[slot].max(version);
        }
    }

    /// `process`'s tracking is back on, from when the server had made `current` current.
    pub(in crate::simulation) fn tracking_on(&mut self, process: usize, current: &[u64]) {
        for (floor, &version) in self.floors[process].iter_mut().zip(current) {
            *floor = (*floor).max(version);
        }
    }

    /// A value of `entry` was written to Redis, to expire then (`None`: it was deleted, or
    /// lost).
    pub(in crate::simulation) fn written(&mut self, entry: usize, expires: Option<Instant>) {
        self.expires[entry] = expires;
    }

    /// The server lost every key.
    pub(in crate::simulation) fn keys_lost(&mut self) {
        self.expires.fill(None);
    }

    /// Checks a near hit in `process` (`up`: its tracking is on, as far as the world knows;
    /// `max_age`: its near cache's) on `entry` at `now`, which returned `data` (the versions of
    /// `slots`).
    #[allow(clippy::too_many_arguments)]
    pub(in crate::simulation) fn hit(
        &self,
        process: usize,
        up: bool,
        max_age: Option<Duration>,
        entry: usize,
        slots: &[usize],
        data: &[u64],
        now: Instant,
    ) -> Result<(), String> {
        if !up {
            return Err(format!(
                "promise 5: process {process} answered entry {entry} from its near cache while \
                 its tracking was down (between a disconnect, or its start, and the reply to \
                 TRACKING ON)"
            ));
        }
        if let Some(expired) = self.expires[entry].filter(|expires| *expires <= now) {
            return Err(format!(
                "promise 5: process {process} answered entry {entry} from its near cache {}ms \
                 after the entry expired in Redis",
                (now - expired).as_millis()
            ));
        }
        let ((told, told_at), (read, read_at)) =
            (self.told[process][entry], self.read[process][entry]);
        if let Some((age, max_age)) = read_at.zip(max_age).map(|(at, max)| (now - at, max)) {
            if age >= max_age {
                return Err(format!(
                    "promise 5: process {process} answered entry {entry} from its near cache \
                     {}ms after the latest read it could come from, past its maximum age of \
                     {}ms",
                    age.as_millis(),
                    max_age.as_millis()
                ));
            }
        }
        if read < told {
            let at = |when: Option<Instant>| {
                when.map_or("before the run".to_owned(), |when| {
                    format!("t={}ms", (when - self.origin).as_millis())
                })
            };
            return Err(format!(
                "promise 5 (d): process {process} answered entry {entry} from its near cache \
                 with a value read from Redis before a change to one of the entry's keys that \
                 the process had been told of: the latest read it could come from is the \
                 server's operation #{read} (run at {}), the change #{told} (told at {})",
                at(read_at),
                at(told_at)
            ));
        }
        let floors = &self.floors[process];
        for (&slot, &read) in slots.iter().zip(data) {
            if read < floors[slot] {
                return Err(format!(
                    "promise 5 (d): a near hit in process {process} returned data of slot \
                     {slot} at version {read}, older than the version {} whose change was \
                     announced to this process (or made by it) before the hit",
                    floors[slot]
                ));
            }
        }
        match data.len() == slots.len() {
            true => Ok(()),
            false => Err(format!(
                "a near value of {} versions for {} slots",
                data.len(),
                slots.len()
            )),
        }
    }
}
