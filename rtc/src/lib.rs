//! Cache function results in Redis (or in this process's memory) and drop every entry carrying a
//! tag in one round trip, however many there are.
//!
//! ```
//! use rtc::{cached, TaggedCache};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
//!
//! #[cached(tags = [format!("user:{id}")], lifetime = 60)]
//! fn get_user(id: u64) -> User {
//!     User { id } // a slow query, in real life
//! }
//!
//! // Once, at start-up (`.url("redis://127.0.0.1/")` for Redis):
//! rtc::set_global(TaggedCache::builder().in_memory().build()?).ok();
//!
//! get_user(42);                                     // computed, then cached
//! get_user(42);                                     // from the cache
//! rtc::global().unwrap().invalidate(["user:42"]);   // every entry tagged user:42 misses
//! invalidate_get_user(42);                          // or just this entry
//! # Ok::<(), rtc::ConfigError>(())
//! ```
//!
//! # Two ways in
//!
//! - **[`#[cached]`](cached)** on a function, or on a method and its `impl` block (trait impls
//!   included): its results are cached under a key made of the function and its arguments,
//!   tagged as you say. It also generates `invalidate_<fn>(args)`, `invalidate_all_<fn>()`,
//!   `refresh_<fn>(args)` and `key_<fn>(args)`. `Result` caches
//!   only `Ok`, `Option` only `Some`; `async fn` use the async engine; `lock = true` runs one
//!   computation per cold entry across threads, tasks and processes; `stale_if_error`,
//!   `stale_while_revalidate` and `stale_if_slow` serve a value past its lifetime when that beats
//!   failing or waiting, never one whose tags were invalidated.
//! - **[`TaggedCache`]** directly: [`set`](TaggedCache::set), [`get`](TaggedCache::get),
//!   [`delete`](TaggedCache::delete), [`invalidate`](TaggedCache::invalidate),
//!   [`invalidate_all`](TaggedCache::invalidate_all), each with an `_async` twin; and
//!   [`get_with`](TaggedCache::get_with) / [`try_get_with`](TaggedCache::try_get_with) (async:
//!   [`get_with_async`](TaggedCache::get_with_async), taking the future), get-or-compute with
//!   the guarantees of a `#[cached(lock = true)]` function. [`ping`](TaggedCache::ping) is a
//!   health check. A miss says why ([`CacheMiss::kind`]).
//!
//! ```
//! use rtc::{Lifetime, TaggedCache};
//!
//! let cache = TaggedCache::builder().namespace("shop").in_memory().build()?;
//! cache.set("cart:7", &vec!["apple", "pear"], ["user:42", "carts"], Lifetime::Default);
//! let cart: Vec<String> = cache.get("cart:7", ["carts", "user:42"]).unwrap();
//! assert_eq!(cart, ["apple", "pear"]);
//! cache.invalidate(["user:42"]);
//! assert!(cache.get::<Vec<String>>("cart:7", ["carts", "user:42"]).is_err());
//! # Ok::<(), rtc::ConfigError>(())
//! ```
//!
//! An entry is identified by its key **and** its set of tags: `set("k", v1, ["a"])` and
//! `set("k", v2, ["b"])` are two entries. Values are stored as JSON (serde_json) unless the
//! cache or a `#[cached]` function picks another [`Codec`] (next section), or a function names
//! its own `serializer`/`deserializer`.
//!
//! # Codecs
//!
//! | feature | what | pick it with |
//! |---|---|---|
//! | (none) | JSON, the default | |
//! | `postcard` | [`Codec`]`::Postcard`, compact binary: a third to a half of JSON's size, faster to decode | [`TaggedCacheBuilder::codec`], `#[cached(codec = rtc::Codec::Postcard)]` |
//! | `lz4` | LZ4 compression of values longer than a threshold, pure Rust | `TaggedCacheBuilder::compress_above`, `#[cached(compress_above = 4096)]` |
//!
//! Every entry records its codec and compression. A reader that expects another codec, or
//! finds a compressed value in a build without `lz4`, counts a miss and logs a rate-limited
//! warning: it never decodes bytes with the wrong codec. Entries written by rtc 0.1 (JSON or a
//! custom serializer, no codec recorded) are still read by JSON and custom-serializer readers.
//!
//! # Backends
//!
//! | builder | where entries live |
//! |---|---|
//! | `.url("redis://host:6379/0")` or `.host().port().db()` | one Redis server (7.0 or newer) |
//! | `.cluster_urls([...])` | a Redis Cluster; entries and tags spread over every shard |
//! | `.in_memory()` | this process; same semantics, no Redis needed |
//! | `.disabled(true)` | nowhere: every read misses, every write does nothing |
//!
//! TLS (`rediss://`, `.tls(true)`, [`tls_ca_file`](TaggedCacheBuilder::tls_ca_file),
//! [`tls_client_cert`](TaggedCacheBuilder::tls_client_cert)) needs the `tls` feature. ACL users
//! go in the URL or in `.username()`/`.password()`; [`TaggedCache::key_pattern`] gives the key
//! pattern an ACL rule can confine a user to.
//!
//! # Guarantees
//!
//! - **Fail open.** A Redis error, timeout, corrupt entry or value that does not (de)serialize is
//!   a miss or a skipped write plus one rate-limited `tracing` warning; after a connection
//!   failure Redis is skipped for a short, growing pause. Nothing panics; `build()` never
//!   connects and errs only for settings that cannot work ([`ConfigError`]).
//! - **Never stale after an invalidation returns**, including values that were being computed
//!   while it happened: values are stamped with the tag versions read before computing. This
//!   holds for every hit from Redis and from the in-memory backend, and for near hits after an
//!   invalidation in the same process. A near hit ([`TaggedCacheBuilder::near_cache`]) in
//!   *another* process serves the old value until Redis's invalidation message reaches it:
//!   p99 29–47 µs on an idle loopback, 3.7–4.7 ms with both CPUs of a 2-core machine busy
//!   (`BENCHMARKS.md`), and never longer than
//!   [`near_cache_max_age`](TaggedCacheBuilder::near_cache_max_age) when it is set.
//! - **One computation per cold entry** with `lock = true` while Redis is healthy.
//!
//! A hit is one round trip (`MGET` of the entry and its tags' versions), an invalidation one
//! round trip whatever the number of entries. The repository's `ARCHITECTURE.md` explains the
//! key layout and entry format, `RELIABILITY.md` which test proves each promise, and
//! `BENCHMARKS.md` the measured cost beside raw redis-rs.
//!
//! # Coming from redis-tagged-cache (Python), or from rtc before 0.1
//!
//! | seed / before 0.1 | rtc 0.1 |
//! |---|---|
//! | `set(.., None)`, `Some(Duration::ZERO)`, `default_lifetime(None)` | [`Lifetime::Default`], [`Lifetime::Never`], `default_lifetime(Lifetime::Never)` |
//! | `in_local_memory(True)` | [`in_memory()`](TaggedCacheBuilder::in_memory) |
//! | `ssl`, `socket_timeout`, `socket_connect_timeout` | [`tls`](TaggedCacheBuilder::tls), [`response_timeout`](TaggedCacheBuilder::response_timeout), [`connect_timeout`](TaggedCacheBuilder::connect_timeout) |
//! | `timeout` (serve a stale value when the function is slow) | `stale_if_slow` ([builder](TaggedCacheBuilder::stale_if_slow) and `#[cached]`) |
//! | `unserializer` | `deserializer` |
//! | `returns = Result` | (not needed: a `Result` is found by its type) |
//! | `CacheInfo::filepath`, `class_name`, `method_decorator`, `lock_waiting_ms` | [`CacheInfo::file`], `impl_type`, `is_method`, `lock_waited: Duration` |
//! | `Err(CacheMiss)` | `Err(miss)`, with [`miss.kind()`](CacheMiss::kind): [`MissKind`] |
//!
//! The repository's `CHANGELOG.md` gives each change with its migration.
//!
//! # Observability
//!
//! [`TaggedCache::stats`] returns counters (hits, misses, sets, invalidations, errors, lock
//! waits): every `get` and every decorated call is exactly one hit or one miss, so
//! `hits / (hits + misses)` is the hit ratio. [`TaggedCacheBuilder::cache_hook`] calls a function
//! with a [`CacheInfo`] after every decorated call; `tracing` debug events mark hits, misses,
//! lock waits and bypasses, and warnings say what went wrong (install a subscriber to see them).
//!
//! # Metrics
//!
//! With the `metrics` cargo feature, rtc reports through the [`metrics`](https://docs.rs/metrics)
//! facade to whatever recorder the application installs (a Prometheus exporter, StatsD, an
//! OpenTelemetry bridge); without it, none of this code exists.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `rtc_hits_total`, `rtc_misses_total` | counter | `namespace`, `function` (`get` for [`TaggedCache::get`]) |
//! | `rtc_hit_seconds`, `rtc_miss_seconds` | histogram | `namespace`, `function` |
//! | `rtc_lock_waits_total` | counter | `namespace`, `function` |
//! | `rtc_errors_total` | counter | `namespace`, `operation` (`read`, `write`, `delete`, `invalidate`, `lock`, `codec`), `kind` |
//!
//! The bookshop example (`examples/src/bookshop`) serves them at `GET /metrics` with
//! `metrics-exporter-prometheus`.

#![warn(missing_docs)]

#[doc(inline)]
pub use rtc_macros::cached;

pub use rtc_core::redis;

pub use rtc_core::{
    global, set_global, CacheInfo, CacheMiss, CacheStats, Codec, ConfigError, EntryRef, HookFn,
    IntoTags, Lifetime, MissKind, PingError, PingErrorKind, TaggedCache, TaggedCacheBuilder,
    MAX_TAGS, NO_TAGS,
};

/// Support code for the `#[cached]` macro. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use rtc_core::__private::*;
    pub use serde;
    pub use std::time::Duration;
}

/// The README's examples, compiled as doc tests so that they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
