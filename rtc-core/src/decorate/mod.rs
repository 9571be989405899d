//! What `#[cached]` functions call at run time. Not public API: the macro's generated code is its
//! only user, through `rtc::__private`.
//!
//! A call's logic is the state machine in `protocol`; the methods of [`Call`] are its two
//! drivers, blocking and async, which alone wait for other callers and run the function.
//!
//! The files: `site` (where a function lives, its key and tags), `call` (one call: what it is
//! made of, its entry points, its cache, key and entry), `drivers` (the blocking and async
//! drivers of its protocol: one loop, written once), `effects` (what the drivers do besides
//! stepping the protocol, blocking or awaited), `report` (its report to the hook, the metrics and
//! debug logging).

mod arguments;
mod background;
mod call;
mod drivers;
mod effects;
mod get_with;
mod host;
mod json_args;
mod outcome;
mod protocol;
mod report;
mod seconds;
mod shape;
#[cfg(feature = "simulation")]
pub(crate) mod simulated;
mod site;
mod stale;
#[cfg(test)]
mod virtual_time;
mod work;

pub use self::arguments::{
    KeyArgument, OptionalArgument, SerializableArgument, UnserializableArgument,
};
pub use self::call::Call;
use self::drivers::Driven;
pub use self::get_with::EntryRef;
pub use self::json_args::{JsonArgs, JsonArray};
pub use self::outcome::{
    skips, AsIs, NearProbe, NearShared, NearUnshared, Outcome, Sharing, Unless, ValueCodec,
};
pub(crate) use self::report::Report;
pub use self::seconds::{duration, lifetime, IntoLifetime, Seconds};
pub use self::shape::{
    caches_errors, caches_none, custom_codec, fails, near_probe, serde_codec, AsIsShape, Fails,
    IsOption, IsResult, OptionShape, ResultShape, Shape, ShapeAsIs, ShapeOfOption, ShapeOfResult,
    ShapeProbe,
};
pub use self::site::{custom_key, put_cached_on_the_impl_block_too, tag, tags, Site, Tag, Tags};
pub use self::stale::StaleOptions;
pub use crate::lifetime::Lifetime;
pub use crate::near::KeyedTags;
