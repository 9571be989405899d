//! What the table compares: per workload, its baseline, the rows beside it, and the issue's
//! targets.

/// Where a row's figures come from.
#[derive(Clone, Copy)]
pub enum Source {
    /// `<criterion home>/<group>/<bench>/new/sample.json`.
    Criterion(&'static str, &'static str),
    /// A workload of `python.json`.
    Python(&'static str),
}

/// What the issue asks of a row.
#[derive(Clone, Copy)]
pub enum Target {
    /// Median latency at most this many times the baseline's.
    LatencyAtMost(f64),
    /// As `LatencyAtMost`, and faster than another row of the same workload.
    LatencyAtMostAndFasterThan(f64, &'static str),
    /// Throughput at least this many times the baseline's.
    ThroughputAtLeast(f64),
    /// As `ThroughputAtLeast`, and above another row's of the same workload.
    ThroughputAtLeastAndAheadOf(f64, &'static str),
}

pub struct Row {
    pub label: &'static str,
    pub source: Source,
    pub target: Option<Target>,
}

pub struct Workload {
    pub title: &'static str,
    /// Rows measure calls in flight at once: the ratio is one of throughputs.
    pub throughput: bool,
    /// The first row is the baseline.
    pub rows: Vec<Row>,
}

pub const fn row(label: &'static str, source: Source) -> Row {
    Row {
        label,
        source,
        target: None,
    }
}

pub const fn target(label: &'static str, source: Source, target: Target) -> Row {
    Row {
        label,
        source,
        target: Some(target),
    }
}

pub fn workloads() -> Vec<Workload> {
    use Source::{Criterion as C, Python as P};
    vec![
        Workload {
            title: "sync `get` hit, 2 tags, ~100-byte value, one thread",
            throughput: false,
            rows: vec![
                row("raw redis-rs `GET` (baseline)", C("get_hit", "raw_get")),
                target(
                    "rtc `get`",
                    C("get_hit", "rtc_get"),
                    Target::LatencyAtMost(1.2),
                ),
                row("Python redis-py `GET`", P("get_hit/python_raw_get")),
                row("Python rtc `get`", P("get_hit/python_rtc_get")),
            ],
        },
        Workload {
            title: "sync `get` hit, 20 tags against 1, one thread",
            throughput: false,
            rows: vec![
                row(
                    "rtc `get`, 1 tag (baseline)",
                    C("get_tags", "rtc_get_1_tag"),
                ),
                target(
                    "rtc `get`, 20 tags",
                    C("get_tags", "rtc_get_20_tags"),
                    Target::LatencyAtMost(1.3),
                ),
            ],
        },
        Workload {
            title: "raw redis-rs `MGET`, as many keys as a 20-tag `get` reads against a 1-tag one",
            throughput: false,
            rows: vec![
                row(
                    "3 keys: entry, 1 tag, namespace tag (baseline)",
                    C("mget_keys", "raw_mget_3_keys"),
                ),
                row(
                    "22 keys: entry, 20 tags, namespace tag (the floor of the 20-tag row)",
                    C("mget_keys", "raw_mget_22_keys"),
                ),
            ],
        },
        Workload {
            title: "decorated sync fn hit, 1 dynamic tag, one thread",
            throughput: false,
            rows: vec![
                row(
                    "raw redis-rs `GET` (baseline)",
                    C("decorated_sync", "raw_get"),
                ),
                row(
                    "raw `GET`, then `serde_json` decodes the `User` (what any typed cache adds)",
                    C("decorated_sync", "raw_get_decoded"),
                ),
                target(
                    "rtc `#[cached]`",
                    C("decorated_sync", "rtc_cached"),
                    Target::LatencyAtMostAndFasterThan(1.05, "cached_redis"),
                ),
                row(
                    "`cached` `#[concurrent_cached]` + `RedisCache`",
                    C("decorated_sync", "cached_redis"),
                ),
                row(
                    "Python rtc `@cache.decorator`",
                    P("decorated_sync/python_rtc_cached"),
                ),
            ],
        },
        Workload {
            title: "async decorated hit, 64 concurrent tasks, one multiplexed connection",
            throughput: true,
            rows: vec![
                row(
                    "raw redis-rs async `GET`, `ConnectionManager` (baseline)",
                    C("async_64_tasks", "raw_get"),
                ),
                target(
                    "rtc `#[cached]` async fn",
                    C("async_64_tasks", "rtc_cached"),
                    Target::ThroughputAtLeastAndAheadOf(0.85, "cached_redis"),
                ),
                row(
                    "`cached` `#[concurrent_cached]` + `AsyncRedisCache`",
                    C("async_64_tasks", "cached_redis"),
                ),
                row(
                    "raw redis-rs async `MGET` of 4 keys of a hit's sizes, nothing of rtc (the floor of a hit on redis-rs)",
                    C("async_64_tasks", "raw_mget_4_keys"),
                ),
            ],
        },
        Workload {
            title: "`set` with 2 existing tags, one thread",
            throughput: false,
            rows: vec![
                row("raw redis-rs `SET` (baseline)", C("set", "raw_set")),
                target("rtc `set`", C("set", "rtc_set"), Target::LatencyAtMost(1.2)),
                row("Python rtc `set`", P("set/python_rtc_set")),
            ],
        },
        Workload {
            title: "100 hits at once, 2 tags each (one shared), one thread",
            throughput: false,
            rows: vec![
                row(
                    "raw redis-rs `MGET` of 100 keys (baseline)",
                    C("get_many_100", "raw_mget"),
                ),
                row("rtc `get_many` of 100", C("get_many_100", "rtc_get_many")),
                row("100 rtc `get`s", C("get_many_100", "rtc_get_each")),
            ],
        },
        Workload {
            title: "`invalidate` one tag, one thread",
            throughput: false,
            rows: vec![
                row(
                    "tag carried by 1 entry (baseline)",
                    C("invalidate", "tag_of_1_entry"),
                ),
                target(
                    "tag carried by 100,000 entries",
                    C("invalidate", "tag_of_100k_entries"),
                    Target::LatencyAtMost(1.2),
                ),
            ],
        },
        Workload {
            title: "decorated hit, in-memory backend, one thread",
            throughput: false,
            rows: vec![
                row(
                    "`cached` `#[cached]` (baseline)",
                    C("in_memory", "cached_memory"),
                ),
                target(
                    "rtc `#[cached]`, `in_local_memory`",
                    C("in_memory", "rtc_cached"),
                    Target::LatencyAtMost(2.0),
                ),
                row(
                    "Python rtc `@cache.decorator`, `in_local_memory`",
                    P("in_memory/python_rtc_cached"),
                ),
            ],
        },
        Workload {
            title: "near-cache hit (`near_cache`, Redis), one thread",
            throughput: false,
            rows: vec![
                row("raw redis-rs `GET` (baseline)", C("near_sync", "raw_get")),
                target(
                    "rtc `#[cached]`, near hit (≥ 50× faster: ≤ 0.02×)",
                    C("near_sync", "rtc_near_cached"),
                    Target::LatencyAtMost(0.02),
                ),
                row(
                    "rtc `#[cached]` returning `Arc<User>`, near hit",
                    C("near_sync", "rtc_near_cached_arc"),
                ),
                row("rtc `get`, near hit", C("near_sync", "rtc_near_get")),
                row(
                    "`cached` in-memory `#[cached]` (the in-process floor)",
                    C("near_sync", "cached_memory"),
                ),
            ],
        },
        Workload {
            title: "near-cache hits, 64 concurrent tasks",
            throughput: true,
            rows: vec![
                row(
                    "raw redis-rs async `GET`, `ConnectionManager` (baseline)",
                    C("near_async_64_tasks", "raw_get"),
                ),
                target(
                    "rtc `#[cached]` async fn, near hit",
                    C("near_async_64_tasks", "rtc_near_cached"),
                    Target::ThroughputAtLeast(20.0),
                ),
                row(
                    "a clone of the `User` and its drop, nothing else (the floor of any cache that hands out a clone)",
                    C("near_async_64_tasks", "clone_only"),
                ),
            ],
        },
        Workload {
            title: "`set`, 2 tags whose versions the near cache tracks (one plain `SET`)",
            throughput: false,
            rows: vec![
                row("raw redis-rs `SET` (baseline)", C("near_set", "raw_set")),
                target(
                    "rtc `set`",
                    C("near_set", "rtc_set_known_tags"),
                    Target::LatencyAtMost(1.2),
                ),
            ],
        },
        Workload {
            title:
                "in-memory decorated hits from several threads, each on its own key or all on one",
            throughput: true,
            rows: vec![
                row(
                    "1 thread (baseline)",
                    C("memory_threads", "threads_1_own_keys"),
                ),
                row(
                    "2 threads, own keys",
                    C("memory_threads", "threads_2_own_keys"),
                ),
                row(
                    "8 threads, own keys",
                    C("memory_threads", "threads_8_own_keys"),
                ),
                row(
                    "2 threads, one key",
                    C("memory_threads", "threads_2_one_key"),
                ),
                row(
                    "8 threads, one key",
                    C("memory_threads", "threads_8_one_key"),
                ),
            ],
        },
    ]
}
