//! Compile-time promises of the public API: the cache, its builder, its statistics and its
//! errors can cross threads, and every future of the async API can be spawned on a
//! multi-threaded runtime. A change that breaks one fails the build here.

use crate::{
    CacheInfo, CacheMiss, CacheStats, ConfigError, EntryRef, Lifetime, MissKind, TaggedCache,
    TaggedCacheBuilder, NO_TAGS,
};

// Used by the `const` block below, which Rust 1.88's dead-code lint (the MSRV check) does not see.
#[allow(dead_code)]
const fn send_sync<T: Send + Sync>() {}

const _: () = {
    send_sync::<TaggedCache>();
    send_sync::<TaggedCacheBuilder>();
    send_sync::<EntryRef<'static>>();
    send_sync::<CacheStats>();
    send_sync::<CacheInfo>();
    send_sync::<CacheMiss>();
    send_sync::<MissKind>();
    send_sync::<ConfigError>();
    send_sync::<Lifetime>();
};

fn send<T: Send>(_: &T) {}

/// Never called: it only has to compile.
#[allow(dead_code, clippy::let_underscore_future)]
fn async_api_futures_are_send(cache: &TaggedCache) {
    send(&cache.get_async::<String>("k", NO_TAGS));
    send(&cache.get_many_async::<String>([("k", NO_TAGS)]));
    send(&cache.set_async("k", &1, NO_TAGS, Lifetime::Default));
    send(&cache.set_many_async([("k", &1, NO_TAGS)], Lifetime::Default));
    send(&cache.delete_async("k", NO_TAGS));
    send(&cache.invalidate_async(["t"]));
    send(&cache.invalidate_all_async());
    send(&cache.get_with_async("k", NO_TAGS, async { 1_u64 }));
    send(&cache.try_get_with_async("k", NO_TAGS, async { Ok::<u64, String>(1) }));
}
