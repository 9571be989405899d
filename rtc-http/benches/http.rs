//! A cached `GET` through axum and rtc-http's layer, beside the same handler uncached and
//! behind a hand-written moka cache, measured in one run against one Redis: throughput, p50 and
//! p99 of 32 keep-alive connections, each sending its next request when the last one answered.
//!
//! Every setup has its own server, all started first; then each is measured for one second in
//! turn, round after round, so that a change in the machine's load (other processes) falls on
//! every row alike. A row's throughput is the median of its rounds (with their range); its
//! percentiles are over every request of every round. Throughput on a shared machine moves
//! with its neighbours; the CPU time this process spends per request (client and server
//! together, from `/proc/self/stat`; Redis's own time is not in it) moves much less, and is
//! given beside it.
//!
//! Two handlers: `render` builds a 2 KB JSON page and does no I/O (the cheapest upstream there
//! is, the hardest case for a cache), `query` awaits 2 ms first (a database round trip). The
//! cached rows answer 100 pages, all stored before the measurement: every request is a hit.
//!
//! `RTC_BENCH_REDIS_URL` names the server (scripts/bench.sh starts one); without it the bench
//! starts its own. The table is printed and, with `RTC_BENCH_RESULTS`, written to `http.md`
//! there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rtc::TaggedCache;
use rtc_http::ResponseCacheLayer;
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 32;
const PAGES: usize = 100;
const ROUNDS: usize = 7;
const WARM_UP: Duration = Duration::from_millis(300);
const MEASURED: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq)]
enum Handler {
    Render,
    Query,
}

impl Handler {
    fn name(self) -> &'static str {
        match self {
            Handler::Render => "render (2 KB JSON, no I/O)",
            Handler::Query => "query (2 ms await, then render)",
        }
    }
}

/// A page of 20 books as JSON, about 2 KB.
fn page(id: usize) -> Vec<u8> {
    let books: Vec<_> = (0..20)
        .map(|n| {
            serde_json::json!({
                "id": id * 20 + n,
                "title": format!("A book of page {id}, number {n}"),
                "author": "Ursula K. Le Guin",
                "price_cents": 1000 + n,
                "summary": "Words enough to make the page look like a page of a shop.",
            })
        })
        .collect();
    serde_json::to_vec(&books).expect("JSON")
}

async fn render(Path(id): Path<usize>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], page(id))
}

async fn query(Path(id): Path<usize>) -> impl IntoResponse {
    tokio::time::sleep(Duration::from_millis(2)).await;
    ([(header::CONTENT_TYPE, "application/json")], page(id))
}

fn routes(handler: Handler) -> Router {
    match handler {
        Handler::Render => Router::new().route("/pages/{id}", get(render)),
        Handler::Query => Router::new().route("/pages/{id}", get(query)),
    }
}

/// A stored response of the moka cache.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

type Moka = moka::future::Cache<String, Arc<Page>>;

/// The hand-written in-process cache: path and query as the key, 2xx responses kept whole
/// for 60 s, no tags, no coherence between instances.
async fn moka_cache(State(cache): State<Moka>, request: Request, next: Next) -> Response {
    let key = request.uri().to_string();
    if let Some(page) = cache.get(&key).await {
        let mut response = Response::new(Body::from(page.body.clone()));
        *response.status_mut() = page.status;
        *response.headers_mut() = page.headers.clone();
        return response;
    }
    let (parts, body) = next.run(request).await.into_parts();
    let Ok(body) = body.collect().await.map(|collected| collected.to_bytes()) else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if parts.status.is_success() {
        let page = Page {
            status: parts.status,
            headers: parts.headers.clone(),
            body: body.clone(),
        };
        cache.insert(key, Arc::new(page)).await;
    }
    Response::from_parts(parts, Body::from(body))
}

enum Setup {
    Uncached,
    Moka,
    Layer { near: bool },
}

impl Setup {
    fn name(&self) -> &'static str {
        match self {
            Setup::Uncached => "uncached",
            Setup::Moka => "moka (hand-written, in-process)",
            Setup::Layer { near: false } => "rtc-http, Redis",
            Setup::Layer { near: true } => "rtc-http, near cache",
        }
    }
}

async fn app(setup: &Setup, handler: Handler, url: &str, namespace: &str) -> Router {
    let routes = routes(handler);
    match setup {
        Setup::Uncached => routes,
        Setup::Moka => {
            let cache: Moka = moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build();
            routes.layer(middleware::from_fn_with_state(cache, moka_cache))
        }
        Setup::Layer { near } => {
            let mut builder = TaggedCache::builder().url(url).namespace(namespace);
            if *near {
                builder = builder.near_cache(10_000);
            }
            let cache = builder.build().expect("an rtc cache on the bench server");
            let started = Instant::now();
            while *near && !cache.near_cache_active() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "tracking never came up"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let layer = ResponseCacheLayer::builder(cache)
                .lifetime(Duration::from_secs(600))
                .route_tags(|request| {
                    let id = request.uri.path().trim_start_matches("/pages/");
                    [format!("page:{id}")]
                })
                .build()
                .expect("valid settings");
            routes.layer(layer)
        }
    }
}

/// A keep-alive HTTP/1 connection.
async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

/// Requests page after page on one connection until `until`, timing each (in ns).
async fn load(addr: SocketAddr, first: usize, until: Instant) -> Vec<u64> {
    let mut sender = connect(addr).await;
    let mut latencies = Vec::new();
    let mut n = first;
    while Instant::now() < until {
        let request = hyper::Request::get(format!("/pages/{}", n % PAGES))
            .header(header::HOST, "bench")
            .body(Empty::new())
            .expect("a request");
        let started = Instant::now();
        sender.ready().await.expect("ready");
        let response = sender.send_request(request).await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.expect("a body");
        std::hint::black_box(body);
        latencies.push(started.elapsed().as_nanos() as u64);
        n += 1;
    }
    latencies
}

struct Row {
    handler: Handler,
    setup: &'static str,
    /// Requests per second of each round.
    rounds: Vec<f64>,
    /// Latencies of every request, in ns.
    latencies: Vec<u64>,
    /// This process's CPU time per request of each round.
    cpu: Vec<Duration>,
}

impl Row {
    fn per_second(&self) -> f64 {
        let mut rounds = self.rounds.clone();
        rounds.sort_by(f64::total_cmp);
        rounds[rounds.len() / 2]
    }

    fn cpu_per_request(&self) -> Duration {
        let mut cpu = self.cpu.clone();
        cpu.sort_unstable();
        cpu[cpu.len() / 2]
    }

    fn range(&self) -> (f64, f64) {
        let min = self.rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.rounds.iter().copied().fold(0.0, f64::max);
        (min, max)
    }

    fn percentile(&self, q: f64) -> Duration {
        let at = ((self.latencies.len() - 1) as f64 * q) as usize;
        Duration::from_nanos(self.latencies[at])
    }
}

/// A setup's server, its pages stored.
struct Served {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(handler: Handler, setup: &Setup, url: &str, n: usize) -> Served {
    let namespace = format!("bench-http-{}-{n}", std::process::id());
    let app = app(setup, handler, url, &namespace).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for id in 0..PAGES {
        let mut sender = connect(addr).await;
        let request = hyper::Request::get(format!("/pages/{id}"))
            .header(header::HOST, "bench")
            .body(Empty::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        response.into_body().collect().await.expect("a body");
    }
    Served { addr, server }
}

/// The CPU time this process has used, all threads, user and system: `/proc/self/stat`'s
/// `utime` and `stime`, in clock ticks of 10 ms (Linux's `USER_HZ` is 100 on every
/// architecture it reports to user space). `None` where there is no such file.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// One round of one setup: warmed, then measured; (requests per second, latencies, CPU time
/// per request).
async fn round(addr: SocketAddr) -> (f64, Vec<u64>, Duration) {
    let warm_until = Instant::now() + WARM_UP;
    let warming: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(load(addr, c * 7, warm_until)))
        .collect();
    for task in warming {
        task.await.expect("a warm-up connection");
    }
    let cpu_before = cpu_time().unwrap_or_default();
    let started = Instant::now();
    let until = started + MEASURED;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(load(addr, c * 7, until)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a connection"));
    }
    let per_second = latencies.len() as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu_time().unwrap_or_default().saturating_sub(cpu_before);
    let per_request = cpu / u32::try_from(latencies.len().max(1)).unwrap_or(u32::MAX);
    (per_second, latencies, per_request)
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| handler | in front | requests/s (median of rounds; range) | p50 | p99 | throughput vs uncached | vs moka | CPU per request (this process) | CPU vs moka |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let of = |setup: &str| {
            rows.iter()
                .find(|other| other.handler == row.handler && other.setup.starts_with(setup))
                .map_or(f64::NAN, |other| row.per_second() / other.per_second())
        };
        let moka_cpu = rows
            .iter()
            .find(|other| other.handler == row.handler && other.setup.starts_with("moka"))
            .map_or(f64::NAN, |moka| {
                row.cpu_per_request().as_secs_f64() / moka.cpu_per_request().as_secs_f64()
            });
        let (min, max) = row.range();
        out.push_str(&format!(
            "| {} | {} | {:.0} ({:.0}–{:.0}) | {} | {} | {:.2}× | {:.2}× | {:.1} µs | {:.2}× |\n",
            row.handler.name(),
            row.setup,
            row.per_second(),
            min,
            max,
            micros(row.percentile(0.50)),
            micros(row.percentile(0.99)),
            of("uncached"),
            of("moka"),
            row.cpu_per_request().as_secs_f64() * 1e6,
            moka_cpu,
        ));
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let own_server;
    let url = match std::env::var("RTC_BENCH_REDIS_URL") {
        Ok(url) => url,
        Err(_) => {
            own_server = rtc_tests::RedisServer::start();
            own_server.url()
        }
    };
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        let mut servers = Vec::new();
        for handler in [Handler::Render, Handler::Query] {
            for setup in [
                Setup::Uncached,
                Setup::Moka,
                Setup::Layer { near: false },
                Setup::Layer { near: true },
            ] {
                servers.push(serve(handler, &setup, &url, rows.len()).await);
                rows.push(Row {
                    handler,
                    setup: setup.name(),
                    rounds: Vec::new(),
                    latencies: Vec::new(),
                    cpu: Vec::new(),
                });
            }
        }
        for n in 0..ROUNDS {
            for (row, served) in rows.iter_mut().zip(&servers) {
                let (per_second, latencies, cpu) = round(served.addr).await;
                row.rounds.push(per_second);
                row.cpu.push(cpu);
                row.latencies.extend(latencies);
            }
            eprintln!("http: round {} of {ROUNDS} done", n + 1);
        }
        for served in servers {
            served.server.abort();
        }
        for row in &mut rows {
            row.latencies.sort_unstable();
        }
        rows
    });
    let table = table(&rows);
    println!(
        "\n{CONNECTIONS} connections, {ROUNDS} rounds of {} s per row, {} CPUs available\n\n{table}",
        MEASURED.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Ok(results) = std::env::var("RTC_BENCH_RESULTS") {
        let path = std::path::Path::new(&results).join("http.md");
        std::fs::write(&path, &table).expect("the results directory is writable");
    }
}
