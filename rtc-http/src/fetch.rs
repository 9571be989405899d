//! A request that goes upstream for the cache: the upstream's answer judged, its body read,
//! its tags compared with the ones read before it left, and stored only if that is sound.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::{collect, Collected, ResponseBody};
use crate::config::Config;
use crate::policy::{self, Refusal};
use crate::stored::{unix_ms, Manifest, Payload, StoredResponse};
use crate::tags::take_handler_tags;

/// What the upstream gave a lookup, handed back to the request beside the cache's answer (a
/// response that is not stored cannot travel through the cache).
pub(crate) enum Upstream<B: Body, E> {
    /// Stored, and returned as this value.
    Stored(Arc<StoredResponse>),
    /// Not stored, not a failure: returned as it is.
    Passed(Response<ResponseBody<B>>),
    /// A 5xx, a body that failed, or the service's error: `stale_if_error` may answer instead.
    Failed(Result<Response<ResponseBody<B>>, E>),
}

/// Where a fetch leaves what the upstream gave, for its request to find.
pub(crate) type Slot<B, E> = Arc<Mutex<Option<Upstream<B, E>>>>;

/// What a lookup knew before its request went upstream.
pub(crate) struct Expected {
    /// The key's manifest as read (or the default one).
    pub(crate) manifest: Arc<Manifest>,
    /// The request's key before `Vary` (its manifest's name).
    pub(crate) base: String,
    /// The tags whose versions the lookup read: the route's and the manifest's.
    pub(crate) tags: BTreeSet<String>,
    /// The lifetime of the entry the lookup would store.
    pub(crate) lifetime: Duration,
}

/// One upstream call made for the cache; it owns what it needs, so it can run in the background
/// as a `stale_while_revalidate` refresh.
pub(crate) struct Fetch<S, Q, B: Body, E> {
    pub(crate) config: Arc<Config>,
    pub(crate) inner: S,
    pub(crate) request: Request<Q>,
    pub(crate) slot: Slot<B, E>,
    pub(crate) expected: Expected,
}

impl<S, Q, B> Fetch<S, Q, B, S::Error>
where
    S: Service<Request<Q>, Response = Response<B>>,
    B: Body<Data = Bytes>,
{
    /// Calls upstream. `Ok`: the response to store (stamped by rtc with the versions read
    /// before the call); `Err`: nothing to store, what to return is in the slot.
    pub(crate) async fn run(self) -> Result<Arc<StoredResponse>, ()> {
        let Fetch {
            config,
            mut inner,
            request,
            slot,
            expected,
        } = self;
        let leave = |upstream: Upstream<B, S::Error>| {
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(upstream);
            }
            Err(())
        };
        let response = match inner.call(request).await {
            Ok(response) => response,
            Err(error) => return leave(Upstream::Failed(Err(error))),
        };
        let (mut head, body) = response.into_parts();
        let handler_tags = take_handler_tags(&mut head, &config.tags_header);
        let given = match policy::judge(
            head.status,
            &head.headers,
            &config.statuses,
            config.follow_cache_control,
        ) {
            Ok(given) => given,
            Err(Refusal::Failure) => {
                return leave(Upstream::Failed(Ok(Response::from_parts(
                    head,
                    ResponseBody::upstream(body),
                ))))
            }
            Err(Refusal::Status | Refusal::Uncacheable) => {
                remember_uncacheable(&config, &expected).await;
                return leave(Upstream::Passed(Response::from_parts(
                    head,
                    ResponseBody::upstream(body),
                )));
            }
        };
        if body
            .size_hint()
            .upper()
            .is_none_or(|upper| upper > config.max_body)
        {
            remember_uncacheable(&config, &expected).await;
            return leave(Upstream::Passed(Response::from_parts(
                head,
                ResponseBody::upstream(body),
            )));
        }
        let (data, trailers) = match collect(body).await {
            Collected::Whole(data, trailers) => (data, trailers),
            Collected::Failed(error) => {
                return leave(Upstream::Failed(Ok(Response::from_parts(
                    head,
                    ResponseBody::failed(error),
                ))))
            }
        };
        if trailers.is_some() || data.len() as u64 > config.max_body {
            remember_uncacheable(&config, &expected).await;
            let body = ResponseBody::buffered(data, trailers);
            return leave(Upstream::Passed(Response::from_parts(head, body)));
        }
        let learned = Manifest {
            vary: policy::vary(&head.headers).unwrap_or_default(),
            tags: handler_tags.iter().cloned().collect(),
            lifetime_ms: given.map(millis),
            pass: false,
        };
        let sound = learned.vary == expected.manifest.vary
            && handler_tags.is_subset(&expected.tags)
            && given.is_none_or(|given| given >= expected.lifetime);
        if !sound {
            // Tags or `Vary` the lookup did not know, or a shorter lifetime: the next lookup
            // reads them first.
            let lifetime = manifest_lifetime();
            write_manifest(&config, &expected.base, learned, lifetime).await;
            return leave(Upstream::Passed(Response::from_parts(
                head,
                ResponseBody::full(data),
            )));
        }
        if learned.lifetime_ms > expected.manifest.lifetime_ms {
            let manifest = Manifest {
                lifetime_ms: learned.lifetime_ms,
                ..Manifest::clone(&expected.manifest)
            };
            let lifetime = manifest_lifetime();
            write_manifest(&config, &expected.base, manifest, lifetime).await;
        }
        let stored = Arc::new(stored(&config, &head, data, expected.lifetime));
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(Upstream::Stored(Arc::clone(&stored)));
        }
        Ok(stored)
    }
}

/// How long a manifest lives: it holds no data, only what the key's responses look like.
fn manifest_lifetime() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Marks the key uncacheable for a while: lookups pass it through without the lock.
async fn remember_uncacheable(config: &Config, expected: &Expected) {
    let manifest = Manifest {
        pass: true,
        ..Manifest::default()
    };
    write_manifest(config, &expected.base, manifest, config.uncacheable_for).await;
}

/// Writes a manifest; a failure is rtc's warning and costs only a relearning later.
async fn write_manifest(config: &Config, base: &str, manifest: Manifest, lifetime: Duration) {
    config
        .manifests
        .write(&config.cache, base, manifest, lifetime)
        .await;
}

/// Headers that belong to one connection or one answer, never stored.
const UNSTORED: [HeaderName; 10] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::CONTENT_LENGTH,
    header::AGE,
    header::SET_COOKIE,
];

/// The response as stored: its headers without the unstored ones and the layer's own, an
/// entity tag (the upstream's, or one made from the body), stamped with the time.
fn stored(
    config: &Config,
    head: &http::response::Parts,
    body: Bytes,
    lifetime: Duration,
) -> StoredResponse {
    let mut headers = Vec::with_capacity(head.headers.len() + 1);
    for (name, value) in &head.headers {
        let own = *name == config.status_header || *name == config.tags_header;
        let hop = name.as_str() == "keep-alive" || name.as_str() == "proxy-connection";
        if own || hop || UNSTORED.contains(name) {
            continue;
        }
        headers.push((
            name.as_str().to_owned(),
            Payload(Bytes::copy_from_slice(value.as_bytes())),
        ));
    }
    let etag = match head
        .headers
        .get(header::ETAG)
        .and_then(|tag| tag.to_str().ok())
    {
        Some(tag) => tag.to_owned(),
        None => {
            let tag = crate::conditional::etag_of(&body);
            headers.push(("etag".to_owned(), Payload(Bytes::from(tag.clone()))));
            tag
        }
    };
    StoredResponse {
        status: head.status.as_u16(),
        headers,
        body: Payload(body),
        etag,
        stored_at_ms: unix_ms(SystemTime::now()),
        fresh_ms: millis(lifetime),
        header_map: OnceLock::new(),
    }
}
