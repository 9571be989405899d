//! The promises the simulator checks after every step, from RELIABILITY.md:
//!
//! - **2. Never stale after an invalidation returns.** The database is a data version per tag.
//!   A writer bumps a tag's version, then invalidates it; once the invalidation has returned,
//!   that version is the tag's *floor*. A call records the floors when it starts; the value it
//!   returns (the versions its computation read) must be at least those floors. Each entry
//!   also has data of its own: a writer bumps it, then deletes the entry
//!   (`invalidate_<fn>(args)`, which leaves a tombstone); once the delete has returned, that
//!   version is the entry's floor, checked the same way.
//! - **3. At most one computation per cold entry with `lock = true`, while Redis is healthy.**
//!   Two `lock = true` callers never compute one entry at once within one *lock period*. A
//!   period ends when the entry's lock expires, or the server loses its keys (`FLUSHALL`, a
//!   restart); a caller whose own `lock_timeout` passed, or that saw Redis fail, computes
//!   alone by design and is not counted.
//! - **5. The near cache never serves what Redis has announced changed**, nor anything while
//!   its tracking is down, nor past its entry's lifetime or its maximum age: `near.rs`, asked
//!   of every answer a process's near cache holds after each step that may have changed it.

use std::fmt;

pub(super) mod near;

/// A broken promise, with what led to it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The seed that replays it (`RTC_SIM_SEED`).
    pub seed: u64,
    /// The step at which it was seen.
    pub step: u64,
    /// The mutant the run had, if any (`RTC_SIM_MUTANT`).
    pub mutant: Option<&'static str>,
    /// What was broken.
    pub what: String,
    /// The call that broke it, step by step, with what happened to the server and the data
    /// meanwhile.
    pub call: Vec<String>,
    /// The last steps, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} broke a promise at step {}: {}",
            self.seed, self.step, self.what
        )?;
        let mutant = self
            .mutant
            .map(|name| format!("RTC_SIM_MUTANT={name} "))
            .unwrap_or_default();
        writeln!(
            f,
            "replay: {mutant}RTC_SIM_SEED={} cargo test -p rtc-core --all-features --test simulation",
            self.seed
        )?;
        writeln!(
            f,
            "the call that broke it, and the server and data meanwhile:"
        )?;
        for line in &self.call {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "the last steps:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// A `lock = true` computation under way.
struct Computing {
    caller: usize,
    entry: usize,
    period: u64,
    /// Computing alone by design: it counts against no one.
    alone: bool,
}

/// What the checker knows: the floors, and the lock periods and computations of each entry.
pub(super) struct Checker {
    /// The floor of each *slot* of data: the tags' first, then each entry's own.
    floors: Vec<u64>,
    tags: usize,
    periods: Vec<u64>,
    computing: Vec<Computing>,
}

impl Checker {
    pub(super) fn new(tags: usize, entries: usize) -> Self {
        Self {
            floors: vec![0; tags + entries],
            tags,
            periods: vec![0; entries],
            computing: Vec::new(),
        }
    }

    /// The floors a call starting now must respect.
    pub(super) fn floors(&self) -> Vec<u64> {
        self.floors.clone()
    }

    /// An invalidation of `slots` (with the data versions its writer made) returned: tags, or
    /// an entry's own data (its delete).
    pub(super) fn invalidated(&mut self, slots: &[(usize, u64)]) {
        for &(slot, version) in slots {
            self.floors[slot] = self.floors[slot].max(version);
        }
    }

    /// Promise 2: a call that started with `floors` returned `data` (the versions read, in
    /// `slots` order: its entry's tags, then the entry's own).
    pub(super) fn returned(
        &self,
        slots: &[usize],
        data: &[u64],
        floors: &[u64],
    ) -> Result<(), String> {
        for (&slot, &read) in slots.iter().zip(data) {
            if read < floors[slot] {
                let (what, how) = match slot.checked_sub(self.tags) {
                    None => (format!("tag {slot}"), "invalidation"),
                    Some(entry) => (format!("entry {entry}'s own"), "delete (tombstone)"),
                };
                return Err(format!(
                    "promise 2: a call returned data of {what} at version {read}, older than \
                     the version {} whose {how} returned before the call started",
                    floors[slot]
                ));
            }
        }
        match data.len() == slots.len() {
            true => Ok(()),
            false => Err(format!(
                "a value of {} versions for {} slots",
                data.len(),
                slots.len()
            )),
        }
    }

    /// The entry's lock expired: a new lock period begins.
    pub(super) fn lock_expired(&mut self, entry: usize) {
        self.periods[entry] += 1;
    }

    /// The server lost every key: every entry's lock period ends.
    pub(super) fn keys_lost(&mut self) {
        for period in &mut self.periods {
            *period += 1;
        }
    }

    /// The entry's current lock period.
    pub(super) fn period(&self, entry: usize) -> u64 {
        self.periods[entry]
    }

    /// Promise 3: `caller` starts computing `entry` with `lock = true`, having last asked for
    /// its lock in `period` (`None`: never); `alone` when it computes alone by design (its
    /// `lock_timeout` passed, or Redis failed it).
    pub(super) fn computes(
        &mut self,
        caller: usize,
        entry: usize,
        period: Option<u64>,
        alone: bool,
    ) -> Result<(), String> {
        let period = period.unwrap_or(self.periods[entry]);
        if !alone {
            if let Some(other) = self
                .computing
                .iter()
                .find(|other| other.entry == entry && other.period == period && !other.alone)
            {
                return Err(format!(
                    "promise 3: callers {} and {caller} compute entry {entry} at once, in one \
                     lock period, on a healthy server",
                    other.caller
                ));
            }
        }
        self.computing.push(Computing {
            caller,
            entry,
            period,
            alone,
        });
        Ok(())
    }

    /// `caller`'s computation ended (it returned, or its process crashed).
    pub(super) fn computed(&mut self, caller: usize) {
        self.computing
            .retain(|computing| computing.caller != caller);
    }
}
