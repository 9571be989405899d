//! The tracking session as the simulator (`crate::simulation`) drives it: the real [`Session`]
//! of one server, whose steps the simulator answers from its model of Redis, on virtual time.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};

pub(crate) use super::known::{Known, KnownTags, Learning, Plan};
pub(crate) use super::session::{Event, Informed, Session, Step};
use super::Source;

/// A session that tracks the keys under `prefixes` of one (simulated) server for `near` (the
/// process's real near cache, or something around it), as `Tracker::start` sets one up for a
/// single server. Its first event is [`Event::Paused`].
pub(crate) fn session(prefixes: Vec<String>, near: Weak<dyn Informed>) -> Session {
    // Never connected to: the simulator answers every step itself.
    let client = redis::Client::open("redis://simulated:6379/?protocol=resp3")
        .expect("a well-formed address");
    Session::new(
        Source::Server(client),
        prefixes,
        near,
        Arc::new(AtomicBool::new(false)),
    )
}
