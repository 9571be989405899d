//! The tagless peer, the `cached` crate's Redis macros, decorating the same function as rtc's
//! rows do: one `GET` of `<prefix><id>` per hit, its value decoded with `serde_json`.

use std::time::Duration;

use super::User;

/// Entries of the `cached` crate's stores live as long as rtc's by default.
const PEER_TTL: Duration = Duration::from_secs(3600);

/// `cached`'s blocking Redis macro (an r2d2 pool of redis-rs connections).
#[cached::macros::concurrent_cached(
    ty = "cached::RedisCache<u64, User>",
    create = r##"{
        cached::RedisCache::builder("bench-cached-sync")
            .connection_string(super::url())
            .ttl(PEER_TTL)
            .build()
            .expect("a cached::RedisCache on the bench server")
    }"##,
    map_error = r##"|error| format!("{error:?}")"##
)]
pub fn cached_user(id: u64) -> Result<User, String> {
    Ok(super::user(id))
}

/// `cached`'s async Redis macro (a redis-rs `MultiplexedConnection`).
#[cached::macros::concurrent_cached(
    ty = "cached::AsyncRedisCache<u64, User>",
    create = r##"{
        cached::AsyncRedisCache::builder("bench-cached-async")
            .connection_string(super::url())
            .ttl(PEER_TTL)
            .build()
            .await
            .expect("a cached::AsyncRedisCache on the bench server")
    }"##,
    map_error = r##"|error| format!("{error:?}")"##
)]
pub async fn cached_user_async(id: u64) -> Result<User, String> {
    Ok(super::user(id))
}
