//! The near entries this thread found last: a hit on one of them skips the shared map (its
//! shard's read lock and probe, most of a lookup's cost when the value is an `Arc`), and is
//! answered without writing to anything other threads read: threads hitting one key at once
//! would otherwise all write to its reference count and pass its cache line around.
//!
//! A slot keeps the entry's [`KeptCell`], not the entry: an entry the map evicts drops as
//! before, its cell empties, and what it held is freed once no thread is reading it (see
//! [`super::entry`]), so the map's bound holds (a cell left in a slot is one pointer).
//! [`visit`] reads what the cell holds in place, without taking a reference. What is found
//! here is answered only after the checks any hit makes (the same identity, every watch live,
//! the deadline ahead). A fresh entry is a right answer wherever it was found: two fresh
//! entries of one identity hold the same value, since a change to anything either read ends
//! its watches.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::entry::{KeptCell, NearEntry};
use super::Kept;

/// Slots per thread, chosen by hash: a thread hitting a few keys over and over finds them all.
const SLOTS: usize = 8;

/// A near cache's number, unique in the process (an address could be reused by a later one).
pub(crate) fn next_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Slot {
    owner: u64,
    hash: u64,
    /// Where the entry publishes what it holds, until it drops.
    cell: Arc<KeptCell>,
}

thread_local! {
    static RECENT: RefCell<[Option<Slot>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

fn index(hash: u64) -> usize {
    // The hash's high bits: quick_cache picks shards with the low ones.
    (hash >> 58) as usize % SLOTS
}

/// Shows `visit` the entry this thread last found under `hash` in `owner`'s near cache, if it
/// is still alive, read in place without touching its reference count.
pub(crate) fn visit(owner: u64, hash: u64, visit: impl FnOnce(&Kept)) {
    let _ = RECENT.try_with(|recent| {
        let Ok(recent) = recent.try_borrow() else {
            return;
        };
        let Some(slot) = recent[index(hash)].as_ref() else {
            return;
        };
        if slot.owner != owner || slot.hash != hash {
            return;
        }
        slot.cell.read(visit);
    });
}

/// Remembers the entry found under `hash` in `owner`'s near cache.
pub(crate) fn remember(owner: u64, hash: u64, entry: &Arc<NearEntry>) {
    let _ = RECENT.try_with(|recent| {
        if let Ok(mut recent) = recent.try_borrow_mut() {
            recent[index(hash)] = Some(Slot {
                owner,
                hash,
                cell: entry.cell(),
            });
        }
    });
}
