//! Tagged HTTP response caching for any tower service (axum included), on
//! [rtc](https://docs.rs/redis-tagged-cache): responses are stored in Redis (or in memory) with
//! tags, and invalidating a tag from a handler, `cache.invalidate_async(["book:42"])`, makes
//! every response carrying it miss on every instance, in one round trip.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Extension, Router};
//! use rtc::TaggedCache;
//! use rtc_http::{ResponseCacheLayer, Tags};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = TaggedCache::builder().url("redis://127.0.0.1/").near_cache(10_000).build()?;
//! let layer = ResponseCacheLayer::builder(cache.clone())
//!     .lifetime(Duration::from_secs(300))
//!     // Tags known from the request: read before the request goes upstream.
//!     .route_tags(|request| request.uri.path().strip_prefix("/books/").map(|id| format!("book:{id}")))
//!     .stale_if_error(Duration::from_secs(3600))
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/books/{id}", get(|| async { "Dune" }))
//!     // Tags the handler gives: learned from its response (see "Handler tags" below).
//!     .route("/shelf", get(|| async { (Extension(Tags::new(["book:1", "book:2"])), "two books") }))
//!     .layer(layer);
//! // After a write commits: every response tagged book:42 misses, on every instance.
//! cache.invalidate_async(["book:42"]).await;
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # What is cached
//!
//! `GET` and `HEAD` requests without `Authorization` are looked up; a `HEAD` is answered from
//! the `GET`'s entry (a miss fills it with a `GET`). The key is the method class, the path and
//! the query with its pairs sorted (or [`ResponseCacheBuilder::key`]'s), plus the values of the
//! request headers the response's `Vary` names. A response is stored when its status is 2xx
//! (or one given to [`cache_status`](ResponseCacheBuilder::cache_status)), it has no
//! `Set-Cookie`, its `Cache-Control` says none of `no-store`, `private`, `no-cache`, its
//! `Vary` is not `*`, and its body is at most [`max_body_size`](ResponseCacheBuilder::max_body_size)
//! by its size hint (a streamed body is passed through as it streams). A stored response gets
//! an `ETag` (the upstream's, or one made from the body); a request whose `If-None-Match`
//! names it gets a 304 (a request that goes upstream to fill the cache goes without its
//! `If-None-Match` and `If-Modified-Since`, so that the upstream answers with the whole
//! response). Every response gets `Age` (for stored ones) and a cache status header
//! (`x-cache` by default): `hit`, `miss`, `stale`, or `pass` (not looked up). `Age` and the
//! `stale` status count on the clock of the instance that answers from when the entry was
//! stored by its writer; whether rtc serves an entry is decided on the Redis server's clock.
//!
//! # Handler tags, and what is guaranteed
//!
//! rtc stamps an entry with its tags' versions read *before* the value is computed, so that an
//! invalidation landing during the computation makes the stored value miss. Route tags
//! ([`route_tags`](ResponseCacheBuilder::route_tags)) are known before the request goes
//! upstream; handler tags (a [`Tags`] response extension, or the `surrogate-key` header,
//! both removed before the response leaves) only after. So the layer keeps, per key, a
//! *manifest*: the handler tags, `Vary` names and lifetime of the last response it got. A
//! lookup reads it first, then reads the versions of the route's tags and the manifest's tags
//! and only then calls upstream. The response is stored only when its handler tags are among
//! the tags read before the call and its `Vary` is the one the lookup keyed on; otherwise it
//! is returned unstored, the manifest is rewritten, and the next request (whose lookup now
//! reads those tags first) stores it.
//!
//! **Guarantee**: once `invalidate(tag)` has returned, no request that starts afterwards is
//! answered with a response stored with `tag`, from any instance reading Redis, whether the
//! invalidation landed before or during the upstream call that produced it, and whether the tag
//! came from the route or the handler; the serve-stale options never serve such a response
//! either (they serve responses past their lifetime only). The cost: the first response of a
//! key whose handler tags or `Vary` are not yet known (or changed) goes upstream twice before
//! it is stored. With rtc's near cache, another instance may answer from its memory until
//! Redis's invalidation message reaches it (rtc's README gives the figures);
//! `near_cache_max_age` bounds that. As everywhere in rtc, an invalidation that returned
//! `false` (Redis unreachable) did not happen.
//!
//! # Stampedes and failures
//!
//! Concurrent requests for a cold key wait for one upstream call, across instances (rtc's lock,
//! [`lock_timeout`](ResponseCacheBuilder::lock_timeout)), and take its response if its stamp
//! is still current for them. [`stale_while_revalidate`](ResponseCacheBuilder::stale_while_revalidate)
//! answers with a response past its lifetime and refreshes it in the background;
//! [`stale_if_error`](ResponseCacheBuilder::stale_if_error) answers with one when the upstream
//! returns a 5xx or fails. A key whose response says it cannot be cached is passed through
//! without a lookup for [`uncacheable_for`](ResponseCacheBuilder::uncacheable_for). Redis
//! trouble never fails a request: rtc logs a warning and the upstream answers.
#![deny(missing_docs)]

mod body;
mod conditional;
mod config;
mod fetch;
mod key;
mod layer;
mod manifests;
mod metrics;
mod policy;
mod respond;
mod service;
mod stored;
mod tags;

pub use body::ResponseBody;
pub use layer::{BuildError, ResponseCacheBuilder, ResponseCacheLayer};
pub use service::{ResponseCache, ResponseFuture};
pub use tags::Tags;

/// The crate README's example, compiled as a doc test so that it cannot drift from the API
/// (the main README repeats it).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
