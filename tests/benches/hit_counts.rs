//! What one Redis hit costs the client, counted rather than timed: allocations (a counting
//! allocator, printed by this binary) and instructions (the same run under callgrind, which
//! `scripts/hit_counts.sh` starts, collecting only inside [`measured`]). Unlike the timed rows,
//! these counts do not move with the machine's load, so a change of a few per cent shows.
//!
//! A decorated hit (`#[rtc::cached]`, one dynamic tag) beside the raw redis-rs `GET` of the same
//! bytes and the tagless peer's hit (the `cached` crate's Redis macros), async (64 tasks on a
//! current-thread runtime, so that callgrind sees every instruction on one thread) or blocking.
//! Beside the counts, the native run prints the calling thread's on-CPU time per call (user and
//! kernel), which includes what callgrind cannot show: SHA-NI, and the caches' misses.
//!
//! Also a blocking low-level `get` of an entry with 1 tag and with 20 (what a tag adds to a
//! hit), and a `set` whose tags the near cache tracks (one plain `SET`) beside a raw `SET`.
//!
//! ```sh
//! cargo bench -p rtc-tests --bench hit_counts -- rtc-async 12800
//! ```
//!
//! Run without a mode (`cargo bench` runs every bench binary with `--bench`), it prints its
//! usage and does nothing.

#[allow(dead_code)]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::LazyLock;

use rtc::TaggedCache;
use support::peer::{cached_user, cached_user_async};
use support::{BenchServer, User};

/// Counts allocations (reallocations included) while [`COUNTING`] is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    if COUNTING.load(Relaxed) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; counting only adds to
// atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `System` through `alloc` or `realloc` with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        count(size);
        // SAFETY: the caller's contract for `realloc` is passed on as it is.
        unsafe { System.realloc(pointer, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ID: u64 = 7;

/// Tasks in flight in the async modes, as in the timed 64-task rows.
const TASKS: usize = 64;

static CACHE: LazyLock<TaggedCache> = LazyLock::new(|| {
    TaggedCache::builder()
        .namespace("bench-hit-counts")
        .url(support::url())
        .build()
        .expect("an rtc cache on the bench server")
});

/// A cache whose near cache tracks the tags it reads: its `set` of an entry whose tags it
/// knows is one plain `SET` ([`Mode::SetKnownTags`]).
static NEAR_CACHE: LazyLock<TaggedCache> = LazyLock::new(|| {
    let cache = TaggedCache::builder()
        .namespace("bench-hit-counts-near")
        .url(support::url())
        .near_cache(1_000)
        .build()
        .expect("an rtc cache with a near cache on the bench server");
    let started = std::time::Instant::now();
    while !cache.near_cache_active() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "tracking never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cache
});

/// The tags of [`Mode::SetKnownTags`]'s entry.
const SET_TAGS: [&str; 2] = ["user:7", "users"];

#[rtc::cached(tags = [format!("user:{id}")], cache = &*CACHE)]
async fn user_async(id: u64) -> User {
    support::user(id)
}

#[rtc::cached(tags = [format!("user:{id}")], cache = &*CACHE)]
fn user_sync(id: u64) -> User {
    support::user(id)
}

/// The low-level entry read by [`Mode::Get1Tag`] and [`Mode::Get20Tags`], and its tags.
fn low_level_entry(tag_count: usize) -> (String, Vec<String>) {
    let tags = (1..=tag_count).map(|tag| format!("tag{tag}")).collect();
    (format!("counted:{tag_count}"), tags)
}

/// What is counted: a decorated hit or the raw `GET`, async or blocking; or a blocking
/// low-level `get` of an entry with 1 tag or with 20 (what each tag adds to a hit).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    RtcAsync,
    RawAsync,
    CachedAsync,
    CachedSync,
    RtcSync,
    RawSync,
    Get1Tag,
    Get20Tags,
    SetKnownTags,
    RawSet,
}

impl Mode {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "rtc-async" => Mode::RtcAsync,
            "raw-async" => Mode::RawAsync,
            "cached-async" => Mode::CachedAsync,
            "cached-sync" => Mode::CachedSync,
            "rtc-sync" => Mode::RtcSync,
            "raw-sync" => Mode::RawSync,
            "get-1-tag" => Mode::Get1Tag,
            "get-20-tags" => Mode::Get20Tags,
            "set-known-tags" => Mode::SetKnownTags,
            "raw-set" => Mode::RawSet,
            _ => return None,
        })
    }
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let Some(mode) = arguments.next().as_deref().and_then(Mode::parse) else {
        eprintln!(
            "usage: hit_counts <rtc-async|raw-async|cached-async|rtc-sync|raw-sync|cached-sync|\
             get-1-tag|get-20-tags|\
             set-known-tags|raw-set> [calls, default 12800]"
        );
        return;
    };
    let calls: usize = arguments
        .next()
        .map(|calls| calls.parse().expect("calls: a number"))
        .unwrap_or(12_800);
    // A whole number of calls per task.
    let calls = calls.div_ceil(TASKS) * TASKS;
    let server = BenchServer::acquire();
    support::write_raw_value(&server);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let mut connection = server.connection();
    let manager = runtime
        .block_on(redis::aio::ConnectionManager::new(server.client()))
        .expect("a ConnectionManager on the bench server");
    for tag_count in [1, 20] {
        let (key, tags) = low_level_entry(tag_count);
        assert!(CACHE.set(&key, &support::user(ID), &tags, rtc::Lifetime::Default));
    }
    assert!(NEAR_CACHE.set(
        "user:7",
        &support::user(ID),
        SET_TAGS,
        rtc::Lifetime::Default
    ));
    // Warm: the entries written, their tags learned (near too), every connection open.
    for _ in 0..3 {
        for tag_count in [1, 20] {
            let (key, tags) = low_level_entry(tag_count);
            assert_eq!(CACHE.get::<User>(&key, &tags).ok(), Some(support::user(ID)));
        }
        assert_eq!(user_sync(ID), support::user(ID));
        assert_eq!(runtime.block_on(user_async(ID)), support::user(ID));
        assert_eq!(cached_user(ID), Ok(support::user(ID)));
        assert_eq!(
            runtime.block_on(cached_user_async(ID)),
            Ok(support::user(ID))
        );
        assert_eq!(
            NEAR_CACHE.get::<User>("user:7", SET_TAGS).ok(),
            Some(support::user(ID))
        );
        assert!(NEAR_CACHE.set(
            "user:8",
            &support::user(ID),
            SET_TAGS,
            rtc::Lifetime::Default
        ));
        black_box(support::raw_get(&mut connection));
        runtime.block_on(support::raw_get_async(manager.clone()));
    }
    let warm_misses = CACHE.stats().misses;
    let on_cpu_before = on_cpu_nanos();
    COUNTING.store(true, Relaxed);
    measured(mode, calls, &runtime, &mut connection, &manager);
    COUNTING.store(false, Relaxed);
    let on_cpu = on_cpu_before
        .zip(on_cpu_nanos())
        .map(|(before, after)| after - before);
    assert_eq!(
        CACHE.stats().misses,
        warm_misses,
        "every counted rtc call was a hit"
    );
    let per_call = |total: &AtomicU64| total.load(Relaxed) as f64 / calls as f64;
    println!(
        "allocations per call {:.2}, bytes allocated per call {:.0}",
        per_call(&ALLOCATIONS),
        per_call(&BYTES)
    );
    match on_cpu {
        Some(nanos) => println!("on-CPU time per call {:.0} ns", nanos as f64 / calls as f64),
        None => println!("on-CPU time per call n/a (no /proc/thread-self/schedstat)"),
    }
    if mode == Mode::RtcAsync {
        println!(
            "decorated call's future: {} bytes",
            std::mem::size_of_val(&user_async(ID))
        );
    }
}

/// How long this thread has run on a CPU, in nanoseconds, user and kernel time together (the
/// first field of Linux's `/proc/thread-self/schedstat`, kept to the nanosecond, where
/// `getrusage` splits ticks). Every counted call runs on this thread, the async ones on its
/// current-thread runtime with redis-rs's reader; the server is another process.
fn on_cpu_nanos() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The counted calls: what `scripts/hit_counts.sh` has callgrind collect (`--toggle-collect`).
#[inline(never)]
fn measured(
    mode: Mode,
    calls: usize,
    runtime: &tokio::runtime::Runtime,
    connection: &mut redis::Connection,
    manager: &redis::aio::ConnectionManager,
) {
    match mode {
        Mode::RtcSync => (0..calls).for_each(|_| {
            black_box(user_sync(black_box(ID)));
        }),
        Mode::RawSync => (0..calls).for_each(|_| {
            black_box(support::raw_get(connection));
        }),
        Mode::SetKnownTags => {
            let value = support::user(ID);
            (0..calls).for_each(|_| {
                let stored = NEAR_CACHE.set(
                    black_box("user:8"),
                    &value,
                    SET_TAGS,
                    rtc::Lifetime::Default,
                );
                assert!(stored);
            });
        }
        Mode::RawSet => {
            let raw = support::user_json(ID);
            (0..calls).for_each(|_| {
                redis::cmd("SET")
                    .arg(support::RAW_KEY)
                    .arg(&raw)
                    .exec(&mut *connection)
                    .expect("SET");
            });
        }
        Mode::Get1Tag | Mode::Get20Tags => {
            let (key, tags) = low_level_entry(if mode == Mode::Get1Tag { 1 } else { 20 });
            (0..calls).for_each(|_| {
                black_box(CACHE.get::<User>(black_box(&key), &tags).expect("a hit"));
            });
        }
        Mode::CachedSync => (0..calls).for_each(|_| {
            black_box(cached_user(black_box(ID)).expect("a hit"));
        }),
        Mode::RtcAsync | Mode::RawAsync | Mode::CachedAsync => runtime.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let manager = manager.clone();
                    tokio::spawn(async move {
                        for _ in 0..calls / TASKS {
                            match mode {
                                Mode::RtcAsync => {
                                    black_box(user_async(black_box(ID)).await);
                                }
                                Mode::CachedAsync => {
                                    black_box(
                                        cached_user_async(black_box(ID)).await.expect("a hit"),
                                    );
                                }
                                _ => support::raw_get_async(manager.clone()).await,
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("a counting task");
            }
        }),
    }
}
