//! A cached `GET` through axum and rtc-http's layer, beside the same handler uncached and
//! behind a hand-written moka cache, measured in one run against one Redis: throughput, p50 and
//! p99 of 32 keep-alive connections, each sending its next request when the last one answered.
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
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURED: Duration = Duration::from_secs(4);

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
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(handler: Handler, setup: Setup, url: &str, round: usize) -> Row {
    let namespace = format!("bench-http-{}-{round}", std::process::id());
    let app = app(&setup, handler, url, &namespace).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // Stores every page (the cached setups), then warms connections and caches.
    for id in 0..PAGES {
        let mut sender = connect(addr).await;
        let request = hyper::Request::get(format!("/pages/{id}"))
            .header(header::HOST, "bench")
            .body(Empty::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        response.into_body().collect().await.expect("a body");
    }
    let warm_until = Instant::now() + WARM_UP;
    let warming: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(load(addr, c * 7, warm_until)))
        .collect();
    for task in warming {
        task.await.expect("a warm-up connection");
    }
    let started = Instant::now();
    let until = started + MEASURED;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(load(addr, c * 7, until)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a connection"));
    }
    let elapsed = started.elapsed();
    server.abort();
    latencies.sort_unstable();
    let at = |q: f64| Duration::from_nanos(latencies[((latencies.len() - 1) as f64 * q) as usize]);
    Row {
        handler,
        setup: setup.name(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| handler | in front | requests/s | p50 | p99 | throughput vs uncached | vs moka |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let of = |setup: &str| {
            rows.iter()
                .find(|other| other.handler == row.handler && other.setup.starts_with(setup))
                .map_or(f64::NAN, |other| row.per_second / other.per_second)
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {:.2}× | {:.2}× |\n",
            row.handler.name(),
            row.setup,
            row.per_second,
            micros(row.p50),
            micros(row.p99),
            of("uncached"),
            of("moka"),
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
        let mut round = 0;
        for handler in [Handler::Render, Handler::Query] {
            for setup in [
                Setup::Uncached,
                Setup::Moka,
                Setup::Layer { near: false },
                Setup::Layer { near: true },
            ] {
                round += 1;
                let row = measure(handler, setup, &url, round).await;
                eprintln!(
                    "http: {} / {}: {:.0} requests/s, p50 {}, p99 {}",
                    row.handler.name(),
                    row.setup,
                    row.per_second,
                    micros(row.p50),
                    micros(row.p99)
                );
                rows.push(row);
            }
        }
        rows
    });
    let table = table(&rows);
    println!(
        "\n{CONNECTIONS} connections, {} s measured per row, {} cores\n\n{table}",
        MEASURED.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Ok(results) = std::env::var("RTC_BENCH_RESULTS") {
        let path = std::path::Path::new(&results).join("http.md");
        std::fs::write(&path, &table).expect("the results directory is writable");
    }
}
