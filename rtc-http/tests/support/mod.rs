//! An application behind the layer, served by axum on a free loopback port, and a hyper HTTP
//! client: the tests talk to it over real sockets, and it caches in a real `redis-server`.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rtc::TaggedCache;
use rtc_http::{ResponseCacheBuilder, ResponseCacheLayer, Tags};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The data and the counters behind the application, shared by its instances (as a database
/// is shared by the instances of a service).
pub struct Upstream {
    /// The version of each book; a write bumps it.
    versions: Mutex<HashMap<u64, u64>>,
    /// Calls per handler name.
    calls: Mutex<HashMap<&'static str, u64>>,
    /// `/flaky` answers 503 while this is set.
    pub failing: AtomicBool,
    /// Held handlers (`/held/...`) wait here for a permit.
    pub gate: Semaphore,
    /// Held handlers that arrived at the gate.
    pub arrived: AtomicU64,
}

impl Upstream {
    pub fn new() -> Arc<Self> {
        Arc::new(Upstream {
            versions: Mutex::default(),
            calls: Mutex::default(),
            failing: AtomicBool::new(false),
            gate: Semaphore::new(0),
            arrived: AtomicU64::new(0),
        })
    }

    /// How many times the handler `name` ran.
    pub fn calls(&self, name: &str) -> u64 {
        self.calls.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn count(&self, name: &'static str) {
        *self.calls.lock().unwrap().entry(name).or_default() += 1;
    }

    pub fn version(&self, book: u64) -> u64 {
        *self.versions.lock().unwrap().get(&book).unwrap_or(&1)
    }

    /// A write to the database: the book's next version.
    pub fn bump(&self, book: u64) -> u64 {
        let mut versions = self.versions.lock().unwrap();
        let version = versions.entry(book).or_insert(1);
        *version += 1;
        *version
    }

    /// Lets `n` held handlers through.
    pub fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

#[derive(Clone)]
struct AppState {
    upstream: Arc<Upstream>,
    cache: TaggedCache,
}

/// The routes: each handler counts its calls under its name.
fn routes(state: AppState) -> Router {
    Router::new()
        .route("/books/{id}", get(book).put(change_book))
        .route("/shelf", get(shelf))
        .route("/header-shelf", get(header_shelf))
        .route("/held/books/{id}", get(held_book))
        .route("/held/shelf", get(held_shelf))
        .route("/greeting", get(greeting))
        .route("/no-store", get(no_store))
        .route("/cookie", get(cookie))
        .route("/flaky", get(flaky))
        .route("/streamed", get(streamed))
        .route("/large", get(large))
        .route("/missing", get(missing))
        .route("/short", get(short))
        .with_state(state)
}

/// The route tags of the test application: `/books/{id}` and `/held/books/{id}` carry
/// `book:{id}`, `/flaky` carries `flaky`. The shelf routes carry none: their tags come from
/// their handlers.
pub fn route_tags(path: &str) -> Vec<String> {
    let path = path.strip_prefix("/held").unwrap_or(path);
    if let Some(id) = path.strip_prefix("/books/") {
        return vec![format!("book:{id}")];
    }
    if path == "/flaky" {
        return vec!["flaky".to_owned()];
    }
    Vec::new()
}

async fn book(State(state): State<AppState>, Path(id): Path<u64>) -> String {
    state.upstream.count("book");
    format!("book {id} v{}", state.upstream.version(id))
}

/// A write: the new version, committed, then its tag invalidated through the same cache.
async fn change_book(State(state): State<AppState>, Path(id): Path<u64>) -> String {
    let version = state.upstream.bump(id);
    assert!(state.cache.invalidate_async([format!("book:{id}")]).await);
    format!("book {id} v{version}")
}

fn shelf_text(upstream: &Upstream) -> String {
    format!(
        "shelf: book 1 v{}, book 2 v{}",
        upstream.version(1),
        upstream.version(2)
    )
}

/// Tags from the handler, as an extension.
async fn shelf(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("shelf");
    (
        Extension(Tags::new(["book:1", "book:2"])),
        shelf_text(&state.upstream),
    )
}

/// Tags from the handler, as a header.
async fn header_shelf(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("header-shelf");
    (
        [("surrogate-key", "book:1 book:2")],
        shelf_text(&state.upstream),
    )
}

async fn pass_gate(upstream: &Upstream) {
    upstream.arrived.fetch_add(1, Ordering::SeqCst);
    upstream.gate.acquire().await.unwrap().forget();
}

/// Reads its data, then waits at the gate before answering.
async fn held_book(State(state): State<AppState>, Path(id): Path<u64>) -> String {
    state.upstream.count("held-book");
    let text = format!("book {id} v{}", state.upstream.version(id));
    pass_gate(&state.upstream).await;
    text
}

/// Reads its data, then waits at the gate; tags from the handler.
async fn held_shelf(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("held-shelf");
    let text = shelf_text(&state.upstream);
    pass_gate(&state.upstream).await;
    (Extension(Tags::new(["book:1", "book:2"])), text)
}

/// Varies on `Accept-Language`.
async fn greeting(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    state.upstream.count("greeting");
    let text = match headers.get("accept-language").map(|v| v.as_bytes()) {
        Some(b"fr") => "bonjour",
        _ => "hello",
    };
    ([("vary", "Accept-Language")], text)
}

async fn no_store(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("no-store");
    ([("cache-control", "no-store")], "not for keeping")
}

async fn cookie(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("cookie");
    ([("set-cookie", "session=abc")], "yours only")
}

async fn flaky(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("flaky");
    if state.upstream.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down".to_owned());
    }
    (
        StatusCode::OK,
        format!("flaky v{}", state.upstream.version(9)),
    )
}

/// A body of unknown length, in three chunks.
async fn streamed(State(state): State<AppState>) -> axum::body::Body {
    state.upstream.count("streamed");
    axum::body::Body::new(Chunks(vec!["three", "two ", "one "]))
}

/// Chunks sent one frame at a time, without a size hint (as a stream is).
struct Chunks(Vec<&'static str>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let chunk = self
            .0
            .pop()
            .map(|chunk| Ok(http_body::Frame::data(Bytes::from(chunk))));
        std::task::Poll::Ready(chunk)
    }
}

/// A response that gives itself a lifetime of one second.
async fn short(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("short");
    ([("cache-control", "public, max-age=1")], "for a second")
}

async fn missing(State(state): State<AppState>) -> impl IntoResponse {
    state.upstream.count("missing");
    (StatusCode::NOT_FOUND, "no such page")
}

/// A body of 2 MiB, larger than the layer stores by default.
async fn large(State(state): State<AppState>) -> Vec<u8> {
    state.upstream.count("large");
    vec![b'x'; 2 << 20]
}

/// One instance of the application: its cache and its server.
pub struct App {
    pub addr: SocketAddr,
    pub cache: TaggedCache,
    server: tokio::task::JoinHandle<()>,
}

impl App {
    /// Starts an instance caching in Redis at `url` under `namespace`, its layer set up by
    /// `configure` (route tags are set already).
    pub async fn start(
        url: &str,
        namespace: &str,
        upstream: &Arc<Upstream>,
        configure: impl FnOnce(ResponseCacheBuilder) -> ResponseCacheBuilder,
    ) -> App {
        let cache = TaggedCache::builder()
            .url(url)
            .namespace(namespace)
            .build()
            .unwrap();
        Self::start_with(cache, upstream, configure).await
    }

    /// Starts an instance on this cache.
    pub async fn start_with(
        cache: TaggedCache,
        upstream: &Arc<Upstream>,
        configure: impl FnOnce(ResponseCacheBuilder) -> ResponseCacheBuilder,
    ) -> App {
        let builder = ResponseCacheLayer::builder(cache.clone())
            .route_tags(|request| route_tags(request.uri.path()));
        let layer = configure(builder).build().unwrap();
        let state = AppState {
            upstream: Arc::clone(upstream),
            cache: cache.clone(),
        };
        let app = routes(state).layer(layer);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        App {
            addr,
            cache,
            server,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(self.addr, Method::GET, path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.addr, Method::GET, path, headers).await
    }

    pub async fn head(&self, path: &str) -> Reply {
        send(self.addr, Method::HEAD, path, &[]).await
    }

    pub async fn put(&self, path: &str) -> Reply {
        send(self.addr, Method::PUT, path, &[]).await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A response as the client got it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The cache status header (`x-cache`).
    pub fn cache(&self) -> &str {
        self.header("x-cache")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or("")
    }
}

/// One request on a connection of its own, through hyper's HTTP/1 client.
pub async fn send(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Polls `condition` until it holds; fails after 30 s (an event that never came).
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what}: never");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
