//! A child process for the multi-process stampede tests.
//!
//! `stampede_worker stampede <url> <namespace> <threads> <start_at_unix_ms>`: at the given instant,
//! `threads` threads call the same cold `#[cached(lock = true)]` function; each prints its result.
//! `stampede_worker get_with <url> <namespace> <threads> <start_at_unix_ms>`: the same, through
//! the cache's own `get_with` on the entry [`GET_WITH_KEY`] instead of a decorated function.
//! `stampede_worker hold <url> <namespace>`: calls a locked function whose body never ends, so the
//! process holds the entry's lock until it is killed.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Commands;
use rtc::TaggedCache;
use rtc_tests::stampede::{COUNTER_KEY, GET_WITH_KEY, SLOW_BODY, VALUE};

static CACHE: OnceLock<TaggedCache> = OnceLock::new();
static URL: OnceLock<String> = OnceLock::new();

#[rtc::cached(key = "cold", lock = true, lock_timeout = 10, cache = CACHE.get().unwrap())]
fn slow() -> u64 {
    slow_body()
}

/// Counts its run in Redis, then takes [`SLOW_BODY`].
fn slow_body() -> u64 {
    let mut connection = redis::Client::open(URL.get().unwrap().as_str())
        .and_then(|client| client.get_connection())
        .expect("the worker reaches Redis");
    let _: u64 = connection.incr(COUNTER_KEY, 1).expect("INCR");
    std::thread::sleep(SLOW_BODY);
    VALUE
}

#[rtc::cached(key = "held", lock = true, lock_timeout = 60, cache = CACHE.get().unwrap())]
fn never_ends() -> u64 {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, url, namespace) = (&args[1], &args[2], &args[3]);
    URL.set(url.clone()).unwrap();
    let cache = TaggedCache::builder()
        .url(url)
        .namespace(namespace)
        .build()
        .expect("valid settings");
    CACHE.set(cache).unwrap();
    match mode.as_str() {
        "stampede" | "get_with" => {
            let threads: usize = args[4].parse().expect("a thread count");
            let start_at =
                UNIX_EPOCH + Duration::from_millis(args[5].parse().expect("a start time"));
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| {
                        if let Ok(wait) = start_at.duration_since(SystemTime::now()) {
                            std::thread::sleep(wait);
                        }
                        let result = match mode.as_str() {
                            "stampede" => slow(),
                            _ => CACHE
                                .get()
                                .unwrap()
                                .entry(GET_WITH_KEY, ["t"])
                                .lock_timeout(Duration::from_secs(10))
                                .get_with(slow_body),
                        };
                        println!("result {result}");
                    });
                }
            });
        }
        "hold" => {
            never_ends();
        }
        other => panic!("unknown mode {other}"),
    }
}
