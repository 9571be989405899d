//! The cache hook, `CacheInfo` and the counters, as a decorated function's caller sees them.

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rtc::{CacheInfo, TaggedCache};
use rtc_tests::gates::{wait_until, Latch, EVENT_LIMIT};
use rtc_tests::{unique_namespace, RedisServer};

/// What the hook saw in one call.
#[derive(Debug, Clone)]
struct Seen {
    key: String,
    tags: Vec<String>,
    info: CacheInfo,
    userdata: Option<String>,
}

type Journal = Arc<Mutex<Vec<Seen>>>;

fn recording(builder: rtc::TaggedCacheBuilder) -> (TaggedCache, Journal) {
    let journal = Journal::default();
    let sink = Arc::clone(&journal);
    let cache = builder
        .namespace(unique_namespace("hooks"))
        .cache_hook(
            move |key: &str,
                  tags: &[String],
                  info: &CacheInfo,
                  userdata: Option<&(dyn Any + Send + Sync)>| {
                sink.lock().unwrap().push(Seen {
                    key: key.to_owned(),
                    tags: tags.to_vec(),
                    info: info.clone(),
                    userdata: userdata
                        .and_then(|data| data.downcast_ref::<&str>())
                        .map(|data| (*data).to_owned()),
                });
            },
        )
        .build()
        .unwrap();
    (cache, journal)
}

fn last(journal: &Journal) -> Seen {
    journal
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the hook ran")
}

static SQUARE: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(tags = [format!("n:{n}")], cache = SQUARE.get().unwrap(), hook_userdata = "squares")]
fn square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    n * n
}

#[test]
fn the_hook_sees_a_miss_then_a_hit_of_a_function() {
    let (cache, journal) = recording(TaggedCache::builder().in_memory());
    SQUARE.set(cache.clone()).unwrap();

    assert_eq!(square(7), 49);
    let miss = last(&journal);
    assert!(!miss.info.hit);
    assert_eq!(miss.info.function_name, "square");
    assert_eq!(miss.info.impl_type, "");
    assert!(!miss.info.is_method);
    assert_eq!(miss.info.function_args, "[7]");
    assert!(miss.info.file.ends_with("hooks.rs"), "{}", miss.info.file);
    assert!(miss.info.decorated_elapsed >= Duration::from_millis(5));
    assert!(miss.info.elapsed >= miss.info.decorated_elapsed);
    assert_eq!(miss.info.serialized_size, 2, "49 as JSON");
    assert_eq!(miss.tags, vec!["n:7".to_string()]);
    assert!(miss.key.ends_with("square([7])"), "{}", miss.key);
    assert_eq!(miss.userdata.as_deref(), Some("squares"));
    assert!(!miss.info.lock_full_hit && !miss.info.lock_full_miss);

    assert_eq!(square(7), 49);
    let hit = last(&journal);
    assert!(hit.info.hit);
    assert_eq!(hit.info.decorated_elapsed, Duration::ZERO);
    assert_eq!(hit.info.serialized_size, 2);
    assert_eq!(
        journal.lock().unwrap().len(),
        2,
        "one hook call per decorated call"
    );

    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.sets), (1, 1, 1));

    // `refresh_<fn>` runs the body, stores, and calls the hook too (neither a hit nor a miss).
    assert_eq!(refresh_square(7), 49);
    let refreshed = last(&journal);
    assert_eq!(
        journal.lock().unwrap().len(),
        3,
        "the refresh called the hook"
    );
    assert!(!refreshed.info.hit);
    assert!(refreshed.info.decorated_elapsed >= Duration::from_millis(5));
    assert_eq!(refreshed.userdata.as_deref(), Some("squares"));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.sets), (1, 1, 2));
}

static REPOS: OnceLock<TaggedCache> = OnceLock::new();

struct UserRepo {
    prefix: &'static str,
}

#[rtc::cached]
impl UserRepo {
    #[rtc::cached(tags = [format!("user:{id}")], cache = REPOS.get().unwrap())]
    fn find(&self, id: u64) -> String {
        format!("{}{id}", self.prefix)
    }
}

#[test]
fn the_hook_tells_a_method_from_a_function() {
    let (cache, journal) = recording(TaggedCache::builder().in_memory());
    REPOS.set(cache).unwrap();
    let repo = UserRepo { prefix: "user-" };
    assert_eq!(repo.find(1), "user-1");
    let seen = last(&journal);
    assert!(seen.info.is_method);
    assert_eq!(seen.info.impl_type, "UserRepo", "the type as written");
    assert_eq!(seen.info.function_name, "find");
    assert_eq!(
        seen.info.function_args, "[1]",
        "the receiver is not part of the key"
    );
}

static PANICKY: OnceLock<TaggedCache> = OnceLock::new();

#[rtc::cached(cache = PANICKY.get().unwrap())]
fn answer() -> u32 {
    42
}

#[test]
fn a_panicking_hook_does_not_reach_the_caller() {
    let cache = TaggedCache::builder()
        .in_memory()
        .cache_hook(|_: &str, _: &[String], _: &CacheInfo, _| panic!("a broken hook"))
        .build()
        .unwrap();
    PANICKY.set(cache).unwrap();
    assert_eq!(answer(), 42);
    assert_eq!(answer(), 42);
}

static LOCKED: OnceLock<TaggedCache> = OnceLock::new();

/// Opened by the computation of `locked_slow`, once its caller holds the entry.
static LEADER_HOLDS: Latch = Latch::new();

/// Signals that it runs, and returns only after another caller started waiting for it (and a
/// while longer, so that the wait shows in whole milliseconds).
#[rtc::cached(lock = true, lock_timeout = 5, cache = LOCKED.get().unwrap())]
fn locked_slow(n: u32) -> u32 {
    LEADER_HOLDS.open();
    let cache = LOCKED.get().unwrap();
    wait_until(EVENT_LIMIT, "the follower waits", || {
        cache.stats().lock_waits >= 1
    });
    std::thread::sleep(Duration::from_millis(100));
    n + 1
}

#[test]
fn the_hook_reports_lock_full_miss_full_hit_and_waiting() {
    let server = RedisServer::start();
    let (cache, journal) = recording(TaggedCache::builder().url(server.url()));
    LOCKED.set(cache.clone()).unwrap();

    std::thread::scope(|scope| {
        let leader = scope.spawn(|| locked_slow(1));
        LEADER_HOLDS.wait("the leader computes");
        let follower = scope.spawn(|| locked_slow(1));
        assert_eq!(leader.join().unwrap(), 2);
        assert_eq!(follower.join().unwrap(), 2);
    });
    let calls = journal.lock().unwrap().clone();
    let computed: Vec<&Seen> = calls
        .iter()
        .filter(|seen| seen.info.lock_full_miss)
        .collect();
    let waited: Vec<&Seen> = calls
        .iter()
        .filter(|seen| !seen.info.lock_waited.is_zero())
        .collect();
    assert_eq!(
        computed.len(),
        1,
        "one caller took the lock and computed: {calls:?}"
    );
    assert!(!computed[0].info.hit);
    assert_eq!(waited.len(), 1, "the other waited for it: {calls:?}");
    assert!(waited[0].info.hit, "and received its value");
    assert!(!waited[0].info.lock_full_hit);
    assert!(cache.stats().lock_waits >= 1);

    assert_eq!(locked_slow(1), 2);
    let full_hit = last(&journal);
    assert!(full_hit.info.hit && full_hit.info.lock_full_hit && !full_hit.info.lock_full_miss);
    assert_eq!(full_hit.info.lock_waited, Duration::ZERO);
}
