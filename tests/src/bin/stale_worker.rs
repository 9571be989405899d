//! A child process for the multi-process serve-stale test.
//!
//! `stale_worker <url> <namespace> <threads> <start_at_unix_ms>`: at the given instant, `threads`
//! threads call the same `#[cached(stale_while_revalidate, lock = true)]` function, whose entry
//! the test made stale; each prints what it returned. The process then stays until the entry is
//! fresh again, as a server would: a refresh it runs in the background would die with it.

use std::sync::OnceLock;
use std::time::Duration;

use rtc::TaggedCache;
use rtc_tests::gates::{instant_of_millis, sleep_until};

static CACHE: OnceLock<TaggedCache> = OnceLock::new();
static URL: OnceLock<String> = OnceLock::new();

rtc_tests::refreshed_function!(CACHE.get().unwrap(), URL.get().unwrap());

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, namespace) = (&args[1], &args[2]);
    let threads: usize = args[3].parse().expect("a thread count");
    let start_at = instant_of_millis(&args[4]);
    URL.set(url.clone()).unwrap();
    let cache = TaggedCache::builder()
        .url(url)
        .namespace(namespace)
        .build()
        .expect("valid settings");
    CACHE.set(cache).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                sleep_until(start_at);
                println!("result {}", refreshed());
            });
        }
    });
    let cache = CACHE.get().unwrap();
    let key = key_refreshed().unwrap();
    let started = std::time::Instant::now();
    while cache.get::<u64>(&key, rtc::NO_TAGS).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never refreshed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
