//! The tracking session as the simulator (`crate::simulation`) drives it: the real [`Session`]
//! of one server, whose steps the simulator answers from its model of Redis, on virtual time.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};

pub(crate) use super::known::{Known, KnownTags, Learning, Plan};
pub(crate) use super::session::{Announced, Event, Informed, Session, Step};
use super::Source;

/// A session that has one (simulated) server announce the changes `announced` names to `near`
/// (the process's real near cache, or something around it), as `Tracker::start` sets one up.
/// Its first event is [`Event::Paused`].
pub(crate) fn session(announced: Announced, near: Weak<dyn Informed>) -> Session {
    // Never connected to: the simulator answers every step itself.
    let client = redis::Client::open("redis://simulated:6379/?protocol=resp3")
        .expect("a well-formed address");
    Session::new(
        Source::Server(client),
        announced,
        near,
        Arc::new(AtomicBool::new(false)),
    )
}
