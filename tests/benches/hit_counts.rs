//! What one Redis hit costs the client, counted rather than timed: allocations (a counting
//! allocator, printed by this binary) and instructions (the same run under callgrind, which
//! `scripts/hit_counts.sh` starts, collecting only inside [`measured`]). Unlike the timed rows,
//! these counts do not move with the machine's load, so a change of a few per cent shows.
//!
//! A decorated hit (`#[rtc::cached]`, one dynamic tag) beside the raw redis-rs `GET` of the same
//! bytes, async (64 tasks on a current-thread runtime, so that callgrind sees every instruction
//! on one thread) or blocking:
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
    RtcSync,
    RawSync,
    Get1Tag,
    Get20Tags,
}

impl Mode {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "rtc-async" => Mode::RtcAsync,
            "raw-async" => Mode::RawAsync,
            "rtc-sync" => Mode::RtcSync,
            "raw-sync" => Mode::RawSync,
            "get-1-tag" => Mode::Get1Tag,
            "get-20-tags" => Mode::Get20Tags,
            _ => return None,
        })
    }
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let Some(mode) = arguments.next().as_deref().and_then(Mode::parse) else {
        eprintln!(
            "usage: hit_counts <rtc-async|raw-async|rtc-sync|raw-sync|get-1-tag|get-20-tags> \
             [calls, default 12800]"
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
    // Warm: the entries written, their tags learned, every connection open.
    for _ in 0..3 {
        for tag_count in [1, 20] {
            let (key, tags) = low_level_entry(tag_count);
            assert_eq!(CACHE.get::<User>(&key, &tags).ok(), Some(support::user(ID)));
        }
        assert_eq!(user_sync(ID), support::user(ID));
        assert_eq!(runtime.block_on(user_async(ID)), support::user(ID));
        black_box(support::raw_get(&mut connection));
        runtime.block_on(support::raw_get_async(manager.clone()));
    }
    let warm_misses = CACHE.stats().misses;
    COUNTING.store(true, Relaxed);
    measured(mode, calls, &runtime, &mut connection, &manager);
    COUNTING.store(false, Relaxed);
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
    if mode == Mode::RtcAsync {
        println!(
            "decorated call's future: {} bytes",
            std::mem::size_of_val(&user_async(ID))
        );
    }
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
        Mode::Get1Tag | Mode::Get20Tags => {
            let (key, tags) = low_level_entry(if mode == Mode::Get1Tag { 1 } else { 20 });
            (0..calls).for_each(|_| {
                black_box(CACHE.get::<User>(black_box(&key), &tags).expect("a hit"));
            });
        }
        Mode::RtcAsync | Mode::RawAsync => runtime.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let manager = manager.clone();
                    tokio::spawn(async move {
                        for _ in 0..calls / TASKS {
                            match mode {
                                Mode::RtcAsync => {
                                    black_box(user_async(black_box(ID)).await);
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
