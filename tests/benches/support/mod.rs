//! What the bench binaries share: the one Redis server every figure is measured on, the value
//! every workload caches, criterion's settings, and the driver of the 64-task async workloads.
//!
//! Each bench binary uses a different part of this module, hence `allow(dead_code)` where it is
//! included.

pub mod latency;
pub mod peer;

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rtc_tests::RedisServer;
use serde::{Deserialize, Serialize};

/// Set by `scripts/bench.sh` to the server it started, so that every binary of the run (and the
/// Python peer) measures against the same one.
const URL_VARIABLE: &str = "RTC_BENCH_REDIS_URL";

/// Tasks in flight in the async workloads.
pub const CONCURRENCY: u64 = 64;

/// The Redis server of this run: the script's, or one of our own for a plain `cargo bench`.
pub struct BenchServer {
    url: String,
    _own: Option<RedisServer>,
}

impl BenchServer {
    /// Uses `$RTC_BENCH_REDIS_URL` when set, otherwise starts a server that lives as long as the
    /// returned value. Also records the URL for [`url`], which the cached functions' statics read.
    pub fn acquire() -> Self {
        let server = match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.is_empty() => Self { url, _own: None },
            _ => {
                let own = RedisServer::start();
                Self {
                    url: own.url(),
                    _own: Some(own),
                }
            }
        };
        URL.get_or_init(|| server.url.clone());
        server
    }

    /// A plain sync connection, the kind the sync baselines use.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .expect("connecting to the bench server")
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str()).expect("a valid Redis URL")
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

static URL: OnceLock<String> = OnceLock::new();

/// The bench server's URL, for statics built lazily (the decorated functions' caches).
pub fn url() -> &'static str {
    URL.get()
        .expect("BenchServer::acquire() runs before any cache is built")
}

/// The key the raw baselines read: the user of `id`, as rtc would cache it, under a plain key.
pub const RAW_KEY: &str = "bench:raw:user:7";

/// Writes [`RAW_KEY`] (the value of user 7) for the raw `GET` baselines.
pub fn write_raw_value(server: &BenchServer) {
    redis::cmd("SET")
        .arg(RAW_KEY)
        .arg(user_json(7))
        .exec(&mut server.connection())
        .expect("SET");
}

/// Writes `count` keys holding what a tag's key holds (an 8-byte version), `bench:raw:tag:1`
/// ..., and returns their names: read with [`RAW_KEY`] by the raw `MGET` rows, they make the
/// reply of an rtc read (an entry and its tags' versions) without rtc around it.
pub fn write_version_keys(server: &BenchServer, count: usize) -> Vec<String> {
    let mut connection = server.connection();
    (1..=count)
        .map(|n| {
            let key = format!("bench:raw:tag:{n}");
            redis::cmd("SET")
                .arg(&key)
                .arg(&n.to_le_bytes()[..])
                .exec(&mut connection)
                .expect("SET");
            key
        })
        .collect()
}

/// The sync baseline: one raw redis-rs `GET` of [`RAW_KEY`].
pub fn raw_get(connection: &mut redis::Connection) -> Vec<u8> {
    redis::cmd("GET")
        .arg(RAW_KEY)
        .query(connection)
        .expect("GET")
}

/// The async baseline: one raw redis-rs `GET` of [`RAW_KEY`] on a multiplexed connection.
pub async fn raw_get_async(mut connection: redis::aio::ConnectionManager) {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(RAW_KEY)
        .query_async(&mut connection)
        .await
        .expect("GET");
    std::hint::black_box(bytes);
}

/// One raw redis-rs `MGET` of [`RAW_KEY`] and `versions` (from [`write_version_keys`]) on a
/// multiplexed connection: the keys of an rtc read, as redis-rs alone reads them.
pub async fn raw_mget_async(
    mut connection: redis::aio::ConnectionManager,
    versions: std::sync::Arc<[String]>,
) {
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(RAW_KEY)
        .arg(&versions[..])
        .query_async(&mut connection)
        .await
        .expect("MGET");
    std::hint::black_box(values);
}

/// The value every workload caches: 104 bytes of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub active: bool,
}

/// What the cached functions compute.
pub fn user(id: u64) -> User {
    User {
        id,
        name: format!("User {id:06}"),
        email: format!("user{id:06}@example.com"),
        roles: vec!["reader".to_owned(), "editor".to_owned()],
        active: true,
    }
}

/// `user(id)` as the JSON bytes rtc stores, for the raw `GET`/`SET` baselines.
pub fn user_json(id: u64) -> Vec<u8> {
    serde_json::to_vec(&user(id)).expect("User serializes")
}

/// Criterion with this suite's settings (see BENCHMARKS.md): short enough for the whole run to
/// stay within a few minutes on two cores, long enough for a stable median of ~100 µs calls.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .without_plots()
        .configure_from_args()
}

/// A multi-threaded tokio runtime with one worker per core.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `iters` calls of `call` spread over [`CONCURRENCY`] tasks and returns the wall time, so
/// that criterion's time per iteration is the inverse of the throughput at that concurrency.
pub fn concurrently<F, Fut>(runtime: &tokio::runtime::Runtime, iters: u64, call: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..CONCURRENCY {
            let calls = iters / CONCURRENCY + u64::from(task < iters % CONCURRENCY);
            let call = call.clone();
            tasks.spawn(async move {
                for _ in 0..calls {
                    call().await;
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("a bench task panicked");
        }
        started.elapsed()
    })
}

/// Where the figures that criterion does not keep (memory, Python peer, the table) are written:
/// `$RTC_BENCH_RESULTS`, or `target/bench-results`.
pub fn results_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("RTC_BENCH_RESULTS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-results"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("the bench results directory can be created");
    dir
}
