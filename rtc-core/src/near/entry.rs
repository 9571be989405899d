//! A near entry: it owns what it holds, and frees it through the epoch collector.

use std::ptr::NonNull;

use super::kept::Kept;

/// One entry of the near cache. What it holds is freed once no thread is reading it: the
/// entries a thread found last are read without taking a reference (see [`super::recent`]), so that
/// threads hitting one key do not all write to its reference count.
pub(crate) struct NearEntry {
    /// Owned: from `Box::into_raw`, given back to the epoch collector when the entry drops.
    pub(super) kept: NonNull<Kept>,
}

// SAFETY: a `NearEntry` owns its `Kept`, which is `Send` and `Sync` (checked below), and hands
// out only shared references to it.
unsafe impl Send for NearEntry {}
// SAFETY: as above.
unsafe impl Sync for NearEntry {}

const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Kept>();
};

impl NearEntry {
    pub(super) fn new(kept: Kept) -> Self {
        Self {
            kept: NonNull::from(Box::leak(Box::new(kept))),
        }
    }
}

impl std::ops::Deref for NearEntry {
    type Target = Kept;

    fn deref(&self) -> &Kept {
        // SAFETY: `kept` is freed only after this entry has dropped (`Drop` below).
        unsafe { self.kept.as_ref() }
    }
}

impl Drop for NearEntry {
    fn drop(&mut self) {
        let kept = self.kept;
        let guard = crossbeam_epoch::pin();
        // SAFETY: nothing reaches `kept` through this entry any more. A thread that reads it
        // through its [recent] slot pinned the epoch and then saw this entry still alive, so
        // it pinned before this destruction was deferred, and the collector runs it only once
        // every thread pinned then has unpinned. The closure runs once.
        unsafe { guard.defer_unchecked(move || drop(Box::from_raw(kept.as_ptr()))) };
        // Hand the garbage to the collector now, so that a value is not kept past its entry
        // waiting for this thread's bag to fill.
        guard.flush();
    }
}
