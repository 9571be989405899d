//! A near entry, and how the threads that found it last read what it holds.
//!
//! Those threads read it without writing to anything other threads read (see
//! [`super::recent`]): threads hitting one key at once would otherwise all write to its
//! reference count and pass that cache line between cores. So an entry publishes its [`Kept`]
//! in a [`KeptCell`] (an `arc_swap::ArcSwapOption`) that those threads hold on to, and empties
//! it when it drops. A read of the cell records what it read in a slot of the reading thread's
//! own (arc-swap's "debt"), not in the value's reference count; emptying the cell turns the
//! debts still held on the old value into references, so the value is freed when the last
//! reader is done, and at once when there is none.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::kept::Kept;

/// Where an entry publishes what it holds, for the threads that found it last; empty once the
/// entry has dropped. One pointer: a thread may keep it past its entry without keeping the
/// value, so the near cache's bound on entries holds.
pub(crate) struct KeptCell(ArcSwapOption<Kept>);

impl KeptCell {
    /// Shows `read` what the entry holds, unless the entry has dropped.
    #[inline]
    pub(crate) fn read(&self, read: impl FnOnce(&Kept)) {
        if let Some(kept) = &*self.0.load() {
            read(kept);
        }
    }
}

/// One entry of the near cache: what it holds, also published for the threads that found it
/// last until it drops.
pub(crate) struct NearEntry {
    kept: Arc<Kept>,
    cell: Arc<KeptCell>,
}

impl NearEntry {
    pub(super) fn new(kept: Kept) -> Self {
        let kept = Arc::new(kept);
        Self {
            cell: Arc::new(KeptCell(ArcSwapOption::new(Some(Arc::clone(&kept))))),
            kept,
        }
    }

    /// Where it publishes what it holds, for the thread that found it.
    pub(super) fn cell(&self) -> Arc<KeptCell> {
        Arc::clone(&self.cell)
    }
}

impl std::ops::Deref for NearEntry {
    type Target = Kept;

    fn deref(&self) -> &Kept {
        &self.kept
    }
}

impl Drop for NearEntry {
    fn drop(&mut self) {
        self.cell.0.store(None);
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;
    use crate::near::{Named, NearValue};

    /// A value whose drop marks it dead before its memory goes back.
    struct Canary {
        alive: AtomicBool,
        number: u64,
    }

    impl Drop for Canary {
        fn drop(&mut self) {
            self.alive.store(false, Ordering::SeqCst);
        }
    }

    fn entry(value: Box<dyn Any + Send + Sync>) -> NearEntry {
        NearEntry::new(Kept {
            identity: Named::new("", "k", &["t"]).owned(),
            value: NearValue::Decoded(value),
            watched: Box::new([]),
            expires: None,
        })
    }

    fn canary(number: u64) -> NearEntry {
        entry(Box::new(Canary {
            alive: true.into(),
            number,
        }))
    }

    /// What `cell` holds, if its entry is alive: the canary's number, checked alive.
    fn read(cell: &KeptCell) -> Option<u64> {
        let mut number = None;
        cell.read(|kept| {
            if let NearValue::Decoded(value) = &kept.value {
                let canary = value.downcast_ref::<Canary>().expect("a canary");
                assert!(
                    canary.alive.load(Ordering::SeqCst),
                    "read a value after its drop"
                );
                number = Some(canary.number);
            }
        });
        number
    }

    #[test]
    fn an_entry_is_read_through_its_cell_until_it_drops() {
        let entry = canary(7);
        let cell = entry.cell();
        assert_eq!(read(&cell), Some(7));
        assert!(
            matches!(entry.value, NearValue::Decoded(_)),
            "and through the entry"
        );
        drop(entry);
        assert_eq!(read(&cell), None, "a dropped entry's cell is empty");
    }

    #[test]
    fn what_a_dropped_entry_held_is_freed_though_its_cell_lives_on() {
        let value = Arc::new(());
        let entry = entry(Box::new(Arc::clone(&value)));
        let cell = entry.cell();
        assert_eq!(Arc::strong_count(&value), 2, "kept");
        drop(entry);
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "no thread reads it: freed at once"
        );
        assert_eq!(read(&cell), None);
    }

    #[test]
    fn a_value_being_read_is_freed_only_after_the_read() {
        let entry = canary(1);
        let cell = entry.cell();
        let mut entry = Some(entry);
        cell.read(|kept| {
            // The entry drops while this thread reads what it held: the read stays valid.
            drop(entry.take());
            let NearValue::Decoded(value) = &kept.value else {
                unreachable!("a canary")
            };
            let canary = value.downcast_ref::<Canary>().expect("a canary");
            assert!(
                canary.alive.load(Ordering::SeqCst),
                "freed under its reader"
            );
        });
        assert_eq!(read(&cell), None);
    }

    #[test]
    fn threads_reading_cells_never_see_a_value_freed_under_them() {
        let rounds: u64 = 20_000;
        // What the readers take a cell from; the first one's entry has dropped already.
        let current = Arc::new(std::sync::Mutex::new(canary(0).cell()));
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (current, stop, answered) = (
                    Arc::clone(&current),
                    Arc::clone(&stop),
                    Arc::clone(&answered),
                );
                std::thread::spawn(move || {
                    // Like a thread's slot: a cell kept past its entry, read without a lock.
                    let mut cell = current.lock().unwrap().clone();
                    while !stop.load(Ordering::Relaxed) {
                        if read(&cell).is_some() {
                            answered.fetch_add(1, Ordering::Relaxed);
                        } else {
                            cell = current.lock().unwrap().clone();
                        }
                    }
                })
            })
            .collect();
        // Each round: a new entry, its cell handed to the readers, and the last round's entry
        // dropped while they may be reading it.
        let mut live = canary(0);
        *current.lock().unwrap() = live.cell();
        for round in 1..=rounds {
            let entry = canary(round);
            *current.lock().unwrap() = entry.cell();
            drop(std::mem::replace(&mut live, entry));
        }
        // The last entry stays alive: the readers get to it.
        while answered.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.join().unwrap();
        }
        drop(live);
    }
}
