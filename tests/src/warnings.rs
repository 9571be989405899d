//! The `tracing` warnings rtc logs, captured so a test can count them and read them.
//!
//! [`capture`] installs a subscriber for the calling thread only: events logged on other threads
//! (another test, a multi-thread runtime's workers) are not seen. Run async code on a
//! current-thread runtime inside the closure.

use std::fmt::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One `WARN` or `ERROR` event: its level, message and other fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `WARN` or `ERROR`.
    pub level: Level,
    /// The event's message.
    pub message: String,
    /// The other fields, as `name=value` separated by spaces.
    pub fields: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.level, self.message, self.fields)
    }
}

/// Runs `body` and returns its result with the warnings and errors it logged on this thread.
pub fn capture<R>(body: impl FnOnce() -> R) -> (R, Vec<Warning>) {
    let recorder = Recorder::default();
    let seen = Arc::clone(&recorder.seen);
    let result = tracing::subscriber::with_default(recorder, body);
    let warnings = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    (result, warnings)
}

#[derive(Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Warning>>>,
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Levels compare by verbosity: ERROR < WARN < INFO.
        *metadata.level() <= Level::WARN
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut warning = Warning {
            level: *event.metadata().level(),
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut warning);
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(warning);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

impl Visit for Warning {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}
