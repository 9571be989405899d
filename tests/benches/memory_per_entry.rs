//! Redis memory per cached entry: rtc's entries beside a raw `SET` of the same bytes and beside
//! the `cached` crate's `RedisCache`, measured with `MEMORY USAGE` and with `used_memory`.
//!
//! Not a criterion bench: it prints its figures and writes them to `memory.json` in the results
//! directory for the table of `scripts/bench.sh`.

#[allow(dead_code)]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use cached::ConcurrentCached;
use redis::{Commands, Connection};
use rtc::{Lifetime, TaggedCache};
use rtc_tests::unique_namespace;
use serde::Serialize;
use support::{BenchServer, User};

/// Entries written per kind; the figures are averages over them.
const ENTRIES: u64 = 5_000;
/// The database this binary writes to on the bench server, so that its keys can be told apart
/// from the other benches' by scanning.
const DB: u32 = 9;
/// rtc's default entry lifetime, given to the other kinds too: an expiry costs memory of its own.
const LIFETIME: Duration = Duration::from_secs(3600);

/// The figures of one kind of entry.
#[derive(Debug, Serialize)]
struct Footprint {
    /// Mean `MEMORY USAGE <key> SAMPLES 0`, in bytes.
    memory_usage: f64,
    /// Mean length of the stored string.
    stored_len: f64,
    /// Mean length of the value as serialized by the library (rtc: JSON; cached: MessagePack).
    serialized_len: f64,
    /// Mean growth of `used_memory` less client buffers per entry written (keyspace and expiry
    /// dictionaries included).
    used_memory_per_entry: f64,
}

impl Footprint {
    fn overhead(&self) -> f64 {
        self.memory_usage - self.serialized_len
    }
}

#[derive(Debug, Serialize)]
struct Report {
    entries: u64,
    /// An rtc entry with 2 tags (`set`), ~100 bytes of JSON.
    rtc: Footprint,
    /// The same JSON bytes `SET` under a short plain key with the same lifetime: the floor.
    raw_set: Footprint,
    /// `cached::RedisCache<u64, User>` entries of the same value.
    cached_redis: Footprint,
    /// One rtc tag key (shared by every entry that carries the tag).
    rtc_tag_key_memory_usage: i64,
}

fn main() {
    let server = BenchServer::acquire();
    let url = with_db(server.url(), DB);
    let mut connection = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection())
        .expect("connecting to the bench server");

    let rtc = measure(&mut connection, "rtc:e:*", Serialized::Json, |ids| {
        let cache = TaggedCache::builder()
            .namespace(unique_namespace("bench-memory"))
            .url(url.as_str())
            .build()
            .expect("an rtc cache on the bench server");
        for id in ids {
            assert!(cache.set(
                format!("user:{id}"),
                &support::user(id),
                ["tag1", "tag2"],
                Lifetime::Default
            ));
        }
    });
    // Fixed-width labels: a key's length moves its allocation across size classes.
    let raw_label = run_label("raw");
    let raw_set = measure(
        &mut connection,
        &format!("{raw_label}:*"),
        Serialized::Json,
        |ids| {
            let mut writer = redis::Client::open(url.as_str())
                .and_then(|client| client.get_connection())
                .expect("connecting to the bench server");
            for id in ids {
                redis::cmd("SET")
                    .arg(format!("{raw_label}:{id:04}"))
                    .arg(support::user_json(id))
                    .arg("PX")
                    .arg(LIFETIME.as_millis() as u64)
                    .exec(&mut writer)
                    .expect("SET");
            }
        },
    );
    let cached_prefix = run_label("bench-cached");
    let cached_redis = measure(
        &mut connection,
        &format!("*{cached_prefix}*"),
        Serialized::AsStored,
        |ids| {
            let store = cached::RedisCache::<u64, User>::builder(cached_prefix.as_str())
                .connection_string(&url)
                .ttl(LIFETIME)
                .build()
                .expect("a cached::RedisCache on the bench server");
            for id in ids {
                store
                    .cache_set(id, support::user(id))
                    .expect("cached::RedisCache::cache_set");
            }
        },
    );
    let tag_key = scan(&mut connection, "rtc:t:*")
        .into_iter()
        .next()
        .expect("rtc wrote its tags");
    let report = Report {
        entries: ENTRIES,
        rtc,
        raw_set,
        cached_redis,
        rtc_tag_key_memory_usage: memory_usage(&mut connection, &tag_key),
    };
    print(&report);
    let path = support::results_dir().join("memory.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&report).expect("the report serializes"),
    )
    .expect("memory.json can be written");
    println!("memory: figures written to {}", path.display());
}

/// How the value an entry holds was serialized, for its length.
#[derive(Clone, Copy)]
enum Serialized {
    /// `serde_json::to_vec(&user)`, what rtc stores and the raw `SET` writes.
    Json,
    /// The stored string itself (cached's MessagePack envelope of the value and a format version).
    AsStored,
}

/// Writes [`ENTRIES`] entries with `write`, then averages the footprint of the keys matching
/// `pattern` that it added.
fn measure(
    connection: &mut Connection,
    pattern: &str,
    serialized: Serialized,
    write: impl FnOnce(std::ops::Range<u64>),
) -> Footprint {
    let before_keys = scan(connection, pattern);
    let before_memory = data_memory(connection);
    write(0..ENTRIES);
    let after_memory = data_memory(connection);
    let added: Vec<String> = scan(connection, pattern)
        .into_iter()
        .filter(|key| !before_keys.contains(key))
        .collect();
    assert_eq!(
        added.len() as u64,
        ENTRIES,
        "one new key per entry matching {pattern}"
    );
    let usage: i64 = added.iter().map(|key| memory_usage(connection, key)).sum();
    let stored: i64 = added
        .iter()
        .map(|key| connection.strlen::<_, i64>(key).expect("STRLEN"))
        .sum();
    let serialized: i64 = match serialized {
        Serialized::Json => (0..ENTRIES)
            .map(|id| support::user_json(id).len() as i64)
            .sum(),
        Serialized::AsStored => stored,
    };
    let count = ENTRIES as f64;
    Footprint {
        memory_usage: usage as f64 / count,
        stored_len: stored as f64 / count,
        serialized_len: serialized as f64 / count,
        used_memory_per_entry: (after_memory - before_memory) as f64 / count,
    }
}

fn print(report: &Report) {
    println!(
        "memory: mean over {} entries of ~{:.0} bytes of JSON each",
        report.entries, report.rtc.serialized_len
    );
    for (name, footprint) in [
        ("raw SET", &report.raw_set),
        ("rtc set, 2 tags", &report.rtc),
        ("cached RedisCache", &report.cached_redis),
    ] {
        println!(
            "memory: {name:<18} MEMORY USAGE {:>6.1} B, stored string {:>6.1} B, serialized value {:>6.1} B, \
             overhead beyond the value {:>6.1} B, used_memory growth {:>6.1} B/entry",
            footprint.memory_usage,
            footprint.stored_len,
            footprint.serialized_len,
            footprint.overhead(),
            footprint.used_memory_per_entry,
        );
    }
    println!(
        "memory: one rtc tag key (shared by the entries carrying it): MEMORY USAGE {} B",
        report.rtc_tag_key_memory_usage
    );
}

fn scan(connection: &mut Connection, pattern: &str) -> HashSet<String> {
    connection
        .scan_match::<_, String>(pattern)
        .expect("SCAN")
        .collect::<Result<_, _>>()
        .expect("SCAN replies")
}

fn memory_usage(connection: &mut Connection, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query(connection)
        .expect("MEMORY USAGE")
}

/// `used_memory` less what client connections hold, which the writers' connections would skew.
fn data_memory(connection: &mut Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(connection)
        .expect("INFO memory");
    let field = |name: &str| -> i64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO memory has {name}"))
    };
    field("used_memory") - field("mem_clients_normal")
}

/// `<kind>-<7-digit pid>-<4-digit counter>`: distinct per run and per call, always as long.
fn run_label(kind: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{kind}-{:07}-{:04}",
        std::process::id() % 10_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

/// `url` with its database replaced by (or set to) `db`.
fn with_db(url: &str, db: u32) -> String {
    match url.rsplit_once('/') {
        Some((base, last)) if last.parse::<u32>().is_ok() => format!("{base}/{db}"),
        _ => format!("{}/{db}", url.trim_end_matches('/')),
    }
}
