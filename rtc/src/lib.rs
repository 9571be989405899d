//! rtc facade (documentation lands with the macro).

#[doc(inline)]
pub use rtc_macros::cached;

pub use rtc_core::{
    global, set_global, CacheInfo, CacheMiss, CacheStats, ConfigError, HookFn, TaggedCache,
    TaggedCacheBuilder, MAX_TAGS, NO_TAGS,
};

/// Support code for the `#[cached]` macro. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use rtc_core::decorate::{args_json, custom_key, tags, AsIs, Call, Codec, Outcome, Site};
    pub use serde;
    pub use std::time::Duration;
}
