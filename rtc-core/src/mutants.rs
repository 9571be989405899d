//! The simulator's mutants: rules of the real code it can break, to prove that its checks catch
//! them (feature `simulation` only). A leaf, so that the code a mutant breaks can ask whether it
//! is active without reaching up to the simulator.

use std::cell::Cell;

/// A rule of the real code the simulator can break, to prove that its checks catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// A computed value is stamped with the tag versions read after computing, not before.
    Stamp,
    /// A waiter takes its leader's value without checking its stamp.
    Lock,
    /// A waiter that saw a tag without a version takes its leader's value whatever the stamp
    /// says for that tag (the rule before the simulator found seed 262).
    Unversioned,
    /// Deleting one entry (`invalidate_<fn>(args)`, `delete`) removes it and leaves no
    /// tombstone, so a computation that started before the delete stores its value after it.
    Tombstone,
    /// Serve-stale ignores invalidation: an entry whose tags changed reads as stale (past its
    /// lifetime), not as a miss, to a caller with a stale option.
    Stale,
}

impl Mutant {
    /// The mutant named `name` (`stamp`, `lock`, `unversioned`, `tombstone`, `stale`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "stamp" => Some(Mutant::Stamp),
            "lock" => Some(Mutant::Lock),
            "unversioned" => Some(Mutant::Unversioned),
            "tombstone" => Some(Mutant::Tombstone),
            "stale" => Some(Mutant::Stale),
            _ => None,
        }
    }

    /// Its name, as `RTC_SIM_MUTANT` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::Stamp => "stamp",
            Mutant::Lock => "lock",
            Mutant::Unversioned => "unversioned",
            Mutant::Tombstone => "tombstone",
            Mutant::Stale => "stale",
        }
    }
}

thread_local! {
    /// Which mutant is active on this thread (the simulator runs a seed on one thread).
    static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
}

/// True when `mutant` is active on this thread.
pub(crate) fn active(mutant: Mutant) -> bool {
    ACTIVE.with(|active| active.get() == Some(mutant))
}

/// Activates `mutant` (or none) on this thread.
pub(crate) fn set(mutant: Option<Mutant>) {
    ACTIVE.with(|active| active.set(mutant));
}
