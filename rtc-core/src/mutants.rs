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
    /// Each near cache ignores one tracking message: the first of its run that would end a
    /// watch (the watches on the keys it names live on). Ignoring a message that ends nothing
    /// would change nothing.
    Near,
    /// A data connection's in-band table keeps a tag's version learned by a read even when a
    /// change announced after the read ran took the tag's placeholder before the reply was
    /// handled (`KnownTags::learned` without its placeholder check).
    Inband,
    /// With `OPTIN` tracking, near fills read on the data connections with their times to
    /// live asked, as under `BCAST`: their replies are kept near though Redis tracks none of
    /// their keys for the process's tracking connection. The simulator's model of
    /// `RedisStore`'s routing breaks the rule (the routing itself is `backend::redis`'s, which
    /// the simulator does not run).
    Untracked,
    /// A `set` sent as one plain `SET` (its tags' versions known in-band) writes an entry of
    /// no lineage, as the stamped-write script writes over an entry of none, instead of one of
    /// its own: a computation that read before a delete the `set` came after lands over it.
    Lineage,
}

impl Mutant {
    /// The mutant named `name` (`stamp`, `lock`, `unversioned`, `tombstone`, `stale`, `near`,
    /// `inband`, `untracked`, `lineage`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "stamp" => Some(Mutant::Stamp),
            "lock" => Some(Mutant::Lock),
            "unversioned" => Some(Mutant::Unversioned),
            "tombstone" => Some(Mutant::Tombstone),
            "stale" => Some(Mutant::Stale),
            "near" => Some(Mutant::Near),
            "inband" => Some(Mutant::Inband),
            "untracked" => Some(Mutant::Untracked),
            "lineage" => Some(Mutant::Lineage),
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
            Mutant::Near => "near",
            Mutant::Inband => "inband",
            Mutant::Untracked => "untracked",
            Mutant::Lineage => "lineage",
        }
    }
}

thread_local! {
    /// Which mutant is active on this thread (the simulator runs a seed on one thread).
    static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    /// The near caches (by address) whose message the `near` mutant ignored on this thread.
    static IGNORED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// True when `mutant` is active on this thread.
pub(crate) fn active(mutant: Mutant) -> bool {
    ACTIVE.with(|active| active.get() == Some(mutant))
}

/// Activates `mutant` (or none) on this thread.
pub(crate) fn set(mutant: Option<Mutant>) {
    ACTIVE.with(|active| active.set(mutant));
    IGNORED.with(|ignored| ignored.borrow_mut().clear());
}

/// True for the tracking message the `near` mutant makes the near cache at address `cache`
/// ignore (only while it is active): the first of the run that `ends_a_watch`.
pub(crate) fn ignores_message(cache: usize, ends_a_watch: bool) -> bool {
    if !active(Mutant::Near) || !ends_a_watch {
        return false;
    }
    IGNORED.with(|ignored| {
        let mut ignored = ignored.borrow_mut();
        let first = !ignored.contains(&cache);
        if first {
            ignored.push(cache);
        }
        first
    })
}
