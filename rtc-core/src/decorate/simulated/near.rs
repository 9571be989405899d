//! A simulated process's near cache: the real [`NearCache`], filled and kept by the real
//! `CallFlow` through the process's [`Host`](super::Host) methods, and answered as a
//! `#[cached]` call answers before anything else (`decorate::site::near_value`).

use std::sync::Arc;
use std::time::Duration;

use super::{Data, SimProcess};
use crate::decorate::outcome::ValueCodec;
use crate::decorate::site::near_decoded;
use crate::near::{Named, NearCache};

impl SimProcess {
    /// This process, with a near cache of at most `max_entries` entries, each kept at most
    /// `max_age`. Like a real one, it is not trusted (so neither used nor filled) until its
    /// tracking session has turned tracking on.
    pub(crate) fn with_near(mut self, max_entries: u64, max_age: Option<Duration>) -> Self {
        self.near = Some(Arc::new(NearCache::new(max_entries, max_age)));
        self
    }

    /// Its near cache, if it has one.
    pub(crate) fn near(&self) -> Option<&Arc<NearCache>> {
        self.near.as_ref()
    }

    /// The value the near cache holds for `named`, if it holds a fresh one: a near hit.
    pub(crate) fn near_hit(
        &self,
        named: &Named<'_, String>,
        codec: &ValueCodec<Data>,
    ) -> Option<Data> {
        let mut answer = None;
        near_decoded(self.near.as_deref()?, named, codec, &mut answer);
        answer
    }
}
