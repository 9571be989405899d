//! A tour of rtc: a miss, a hit, an invalidation, with the time each call took.
//!
//! Runs on the embedded in-memory backend; set `REDIS_URL=redis://127.0.0.1:6379/0` to use Redis.

use std::time::{Duration, Instant};

use rtc::{cached, TaggedCache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// A slow lookup, cached per `id`, tagged with the user and with "users".
#[cached(tags = [format!("user:{id}"), "users".to_string()], lifetime = 60)]
fn get_user(id: u64) -> User {
    std::thread::sleep(Duration::from_millis(200)); // the "database"
    User {
        id,
        name: format!("user {id}"),
    }
}

fn timed<T>(label: &str, call: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = call();
    println!(
        "{label:<44} {:>10.3} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    value
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // rtc reports trouble (Redis unreachable, a value that does not serialize) as `tracing`
    // warnings: without a subscriber they would go nowhere.
    tracing_subscriber::fmt::init();
    let builder = TaggedCache::builder().namespace("quickstart");
    let cache = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("backend: Redis at {url}");
            builder.url(url).build()?
        }
        Err(_) => {
            println!("backend: in-process memory (set REDIS_URL to use Redis)");
            builder.in_memory().build()?
        }
    };
    rtc::set_global(cache.clone()).map_err(|_| "a global cache was already set")?;
    // A fresh start, in case an earlier run left entries in Redis.
    cache.invalidate(["users"]);

    timed("get_user(42): miss, runs the body", || get_user(42));
    let user = timed("get_user(42): hit", || get_user(42));
    println!("  -> {user:?}");
    timed("get_user(7): another key, miss", || get_user(7));

    timed("cache.invalidate([\"user:42\"])", || {
        cache.invalidate(["user:42"])
    });
    timed("get_user(42): invalidated, miss", || get_user(42));
    timed("get_user(7): other tag, still a hit", || get_user(7));

    timed("invalidate_get_user(7): this entry only", || {
        invalidate_get_user(7)
    });
    timed("get_user(7): miss", || get_user(7));

    timed(
        "invalidate_all_get_user(): every entry",
        invalidate_all_get_user,
    );
    timed("get_user(42): miss", || get_user(42));

    let stats = cache.stats();
    println!(
        "stats: {} hits, {} misses, {} sets, {} invalidations, {} errors",
        stats.hits, stats.misses, stats.sets, stats.invalidations, stats.errors
    );
    Ok(())
}
