//! Fault injection against real `redis-server` processes: what an application sees when Redis
//! dies, freezes, drops connections, runs out of memory or holds bytes rtc did not write, and
//! when invalidations race with computations. RELIABILITY.md maps each promise to these tests.
//!
//! Staleness is made visible by modelling the data as version numbers
//! ([`rtc_tests::staleness::Data`]): a writer bumps an item's version and then invalidates its
//! tag; every call that starts after the invalidation returned must answer with that version or a
//! newer one.

mod bad_bytes;
mod connection_faults;
mod memory_pressure;
mod odd_values;
mod outage;
mod races;
mod stale_set;
mod support;
mod warnings;
