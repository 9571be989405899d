//! The response that leaves the layer: from a stored one (with `Age`, the cache status, a 304
//! for a matching `If-None-Match`, no body for a `HEAD`), or the upstream's, marked.

use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;

use crate::body::ResponseBody;
use crate::conditional::none_match;
use crate::config::Config;
use crate::stored::StoredResponse;

/// Where a response came from, as the status header says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheStatus {
    /// Stored and fresh.
    Hit,
    /// From upstream, through a lookup (stored or not).
    Miss,
    /// Stored and past its lifetime, within a stale window.
    Stale,
    /// From upstream without a lookup: not a `GET` or `HEAD`, a request with credentials, or
    /// a key known to be uncacheable.
    Pass,
}

impl CacheStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Stale => "stale",
            CacheStatus::Pass => "pass",
        }
    }
}

/// What the client asked that shapes the answer.
pub(crate) struct Asked {
    /// The client sent `HEAD`.
    pub(crate) head: bool,
    /// Its `If-None-Match` headers.
    pub(crate) conditions: HeaderMap,
}

/// Headers a 304 repeats from the stored response (RFC 9110, 15.4.5).
const NOT_MODIFIED_HEADERS: [header::HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// The answer from a stored response.
pub(crate) fn from_stored<B: Body>(
    config: &Config,
    stored: &StoredResponse,
    status: CacheStatus,
    asked: &Asked,
    now: SystemTime,
) -> Response<ResponseBody<B>> {
    let mut response;
    if none_match(&asked.conditions, &stored.etag) {
        response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        for name in NOT_MODIFIED_HEADERS {
            for value in stored.header_map().get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
    } else {
        let body = &stored.body.0;
        response = Response::new(if asked.head {
            ResponseBody::empty()
        } else {
            ResponseBody::full(body.clone())
        });
        *response.status_mut() = stored.status();
        *response.headers_mut() = stored.header_map().clone();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let headers = response.headers_mut();
    headers.insert(header::AGE, HeaderValue::from(stored.age(now).as_secs()));
    headers.insert(
        config.status_header.clone(),
        HeaderValue::from_static(status.as_str()),
    );
    response
}

/// The upstream's response, marked with `status`, its tag header removed; without its body
/// when the client sent `HEAD` and the layer asked upstream with `GET`.
pub(crate) fn passed<B: Body<Data = bytes::Bytes>>(
    config: &Config,
    mut response: Response<ResponseBody<B>>,
    status: CacheStatus,
    drop_body: bool,
) -> Response<ResponseBody<B>> {
    let headers = response.headers_mut();
    headers.remove(&config.tags_header);
    headers.insert(
        config.status_header.clone(),
        HeaderValue::from_static(status.as_str()),
    );
    if drop_body {
        let length = response.body().size_hint().exact();
        if let (false, Some(length)) = (
            response.headers().contains_key(header::CONTENT_LENGTH),
            length,
        ) {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        response = response.map(|_| ResponseBody::empty());
    }
    response
}
