//! What a near entry holds: the value, what the lookup named, the watches of every key the read
//! depended on, and the deadline.

use std::any::Any;
use std::sync::Arc;

use super::identity::{Identity, Named};
use super::watches::Watch;
use crate::clock::Deadline;

/// A value kept near.
pub(crate) enum NearValue {
    /// A low-level entry's value section (decoded on each `get`, whose type is the caller's).
    Section(Box<[u8]>),
    /// A decorated function's decoded value.
    Decoded(Box<dyn Any + Send + Sync>),
}

/// What a near entry holds.
pub(crate) struct Kept {
    pub(super) identity: Identity,
    pub(super) value: NearValue,
    pub(super) watched: Box<[Arc<Watch>]>,
    pub(super) expires: Option<Deadline>,
}

impl Kept {
    pub(crate) fn value(&self) -> &NearValue {
        &self.value
    }

    /// It is what `named` names, and fresh: a hit, wherever it was found.
    pub(super) fn answers<S: AsRef<str>>(&self, named: &Named<'_, S>) -> bool {
        named.is(&self.identity) && self.is_fresh()
    }

    /// Every key it depends on is unchanged and its deadline, if it has one, is ahead (the
    /// clock is read only then).
    pub(super) fn is_fresh(&self) -> bool {
        self.watched.iter().all(|watch| watch.is_live())
            && self.expires.is_none_or(|deadline| deadline.is_ahead())
    }
}
