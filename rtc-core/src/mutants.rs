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
    /// The near cache ignores one tracking message: the 40th of a run (its watches on the
    /// keys that message names live on).
    Near,
}

/// Which tracking message of a run the `near` mutant ignores.
const NEAR_IGNORED: u64 = 40;

impl Mutant {
    /// The mutant named `name` (`stamp`, `lock`, `unversioned`, `tombstone`, `near`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "stamp" => Some(Mutant::Stamp),
            "lock" => Some(Mutant::Lock),
            "unversioned" => Some(Mutant::Unversioned),
            "tombstone" => Some(Mutant::Tombstone),
            "near" => Some(Mutant::Near),
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
            Mutant::Near => "near",
        }
    }
}

thread_local! {
    /// Which mutant is active on this thread (the simulator runs a seed on one thread).
    static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    /// Tracking messages handled on this thread since the mutant was set.
    static MESSAGES: Cell<u64> = const { Cell::new(0) };
}

/// True when `mutant` is active on this thread.
pub(crate) fn active(mutant: Mutant) -> bool {
    ACTIVE.with(|active| active.get() == Some(mutant))
}

/// Activates `mutant` (or none) on this thread.
pub(crate) fn set(mutant: Option<Mutant>) {
    ACTIVE.with(|active| active.set(mutant));
    MESSAGES.with(|messages| messages.set(0));
}

/// True for the tracking message the `near` mutant ignores: counts the messages handled on this
/// thread since the mutant was set, and answers for the [`NEAR_IGNORED`]th (only while the
/// mutant is active).
pub(crate) fn ignores_message() -> bool {
    if !active(Mutant::Near) {
        return false;
    }
    MESSAGES.with(|messages| {
        let handled = messages.get() + 1;
        messages.set(handled);
        handled == NEAR_IGNORED
    })
}
