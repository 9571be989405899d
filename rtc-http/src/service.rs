//! The service: what a request goes through on its way upstream and back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::config::Config;
use crate::fetch::{Expected, Fetch, Upstream};
use crate::key;
use crate::metrics;
use crate::respond::{from_stored, passed, Asked, CacheStatus};
use crate::stored::StoredResponse;

/// A service wrapped by a [`ResponseCacheLayer`](crate::ResponseCacheLayer): `GET` and `HEAD`
/// responses come from the cache when it holds them, every other request goes upstream.
#[derive(Clone)]
pub struct ResponseCache<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ResponseCache<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        ResponseCache { inner, config }
    }
}

impl<S: fmt::Debug> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .field("layer", &self.config)
            .finish()
    }
}

/// The future of a [`ResponseCache`]'s response.
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

impl<S, Q, B> Service<Request<Q>> for ResponseCache<S>
where
    S: Service<Request<Q>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    Q: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send + 'static,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<B, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Q>) -> Self::Future {
        // The clone left behind is the one `poll_ready` has not readied (tower's usual way).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(respond(Arc::clone(&self.config), inner, request))
    }
}

/// True for a request the layer looks up: `GET` or `HEAD`, without credentials (a shared cache
/// does not store answers to them).
fn looked_up(parts: &http::request::Parts) -> bool {
    matches!(parts.method, Method::GET | Method::HEAD) && !parts.headers.contains_key(AUTHORIZATION)
}

async fn respond<S, Q, B>(
    config: Arc<Config>,
    mut inner: S,
    request: Request<Q>,
) -> Result<Response<ResponseBody<B>>, S::Error>
where
    S: Service<Request<Q>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    Q: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send + 'static,
{
    let (mut parts, body) = request.into_parts();
    #[cfg(feature = "metrics")]
    let route = config.route_name(&parts);
    #[cfg(not(feature = "metrics"))]
    let route = ();
    if !looked_up(&parts) {
        let response = inner.call(Request::from_parts(parts, body)).await?;
        metrics::count(route, CacheStatus::Pass);
        return Ok(pass(&config, response));
    }
    let base = config.key(&parts);
    let manifest = config.manifests.read(&config.cache, &base).await;
    if manifest.pass {
        let response = inner.call(Request::from_parts(parts, body)).await?;
        metrics::count(route, CacheStatus::Pass);
        return Ok(pass(&config, response));
    }
    let mut tags = config.route_tags(&parts);
    tags.extend(manifest.tags.iter().cloned());
    let response_key = key::response_key(&base, &manifest.vary, &parts.headers);
    let lifetime = manifest
        .lifetime_ms
        .filter(|_| config.follow_cache_control)
        .map_or(config.lifetime, Duration::from_millis);
    let asked = Asked {
        head: parts.method == Method::HEAD,
        conditions: take_conditions(&mut parts.headers),
    };
    // The cache is filled with whole `GET` responses; a `HEAD` is answered from one.
    parts.method = Method::GET;
    let slot = Arc::new(Mutex::new(None));
    let fetch = Fetch {
        config: Arc::clone(&config),
        inner,
        request: Request::from_parts(parts, body),
        slot: Arc::clone(&slot),
        expected: Expected {
            manifest,
            base,
            tags: tags.clone(),
            lifetime,
        },
    };
    let mut entry = config
        .cache
        .entry(&response_key, &tags)
        .lifetime(lifetime)
        .lock_timeout(config.lock_timeout);
    if let Some(window) = config.stale_if_error {
        entry = entry.stale_if_error(window);
    }
    if let Some(window) = config.stale_while_revalidate {
        entry = entry.stale_while_revalidate(window);
    }
    let answer = entry.try_get_with_detached_async(fetch.run()).await;
    let upstream = slot.lock().ok().and_then(|mut slot| slot.take());
    let now = SystemTime::now();
    let (stored, status): (Arc<StoredResponse>, CacheStatus) = match (answer, upstream) {
        (_, Some(Upstream::Passed(response))) | (Err(()), Some(Upstream::Failed(Ok(response)))) => {
            metrics::count(route, CacheStatus::Miss);
            return Ok(passed(&config, response, CacheStatus::Miss, asked.head));
        }
        (Err(()), Some(Upstream::Failed(Err(error)))) => {
            metrics::count(route, CacheStatus::Miss);
            return Err(error);
        }
        (Ok(stored), Some(Upstream::Stored(computed))) if Arc::ptr_eq(&stored, &computed) => {
            (stored, CacheStatus::Miss)
        }
        // The upstream failed and rtc answered with the entry: `stale_if_error`.
        (Ok(stored), Some(Upstream::Failed(_))) => (stored, CacheStatus::Stale),
        (Ok(stored), _) => {
            let status = if stored.is_stale(now) {
                CacheStatus::Stale
            } else {
                CacheStatus::Hit
            };
            (stored, status)
        }
        (Err(()), Some(Upstream::Stored(_)) | None) => {
            // A fetch that returns `Err` always leaves what it got in the slot first.
            tracing::error!(
                "rtc-http: bug in rtc-http, please report it: a failed fetch left nothing to return"
            );
            let mut response = Response::new(ResponseBody::empty());
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(response);
        }
    };
    metrics::count(route, status);
    Ok(from_stored(&config, &stored, status, &asked, now))
}

/// The upstream's answer to a request that was not looked up, as it streams, marked `pass`.
fn pass<B: Body<Data = Bytes>>(
    config: &Config,
    response: Response<B>,
) -> Response<ResponseBody<B>> {
    let response = response.map(ResponseBody::upstream);
    passed(config, response, CacheStatus::Pass, false)
}

/// Takes the conditional headers out of a request that fills the cache (the upstream must
/// answer with the whole response), returning its `If-None-Match` values, which the layer
/// answers itself.
fn take_conditions(headers: &mut HeaderMap) -> HeaderMap {
    headers.remove(IF_MODIFIED_SINCE);
    let mut conditions = HeaderMap::new();
    if let http::header::Entry::Occupied(entry) = headers.entry(IF_NONE_MATCH) {
        for value in entry.remove_entry_mult().1 {
            conditions.append(IF_NONE_MATCH, value);
        }
    }
    conditions
}
