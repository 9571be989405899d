//! The layer and its settings: [`ResponseCacheLayer`], built by [`ResponseCacheBuilder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, StatusCode};
use rtc::TaggedCache;
use tower_layer::Layer;

use crate::config::Config;
use crate::manifests::Manifests;
use crate::service::ResponseCache;

/// A tower [`Layer`] that caches the `GET` and `HEAD` responses of the service it wraps in an
/// rtc [`TaggedCache`], tagged by route and by handler. Made by [`ResponseCacheLayer::builder`];
/// cheap to clone.
#[derive(Clone)]
pub struct ResponseCacheLayer {
    config: Arc<Config>,
}

impl ResponseCacheLayer {
    /// The settings of a layer caching in `cache` (its namespace, backend, near cache and
    /// warnings are the layer's too).
    pub fn builder(cache: TaggedCache) -> ResponseCacheBuilder {
        ResponseCacheBuilder {
            config: Config {
                cache,
                lifetime: Duration::from_secs(60),
                follow_cache_control: false,
                lock_timeout: Duration::from_secs(5),
                stale_if_error: None,
                stale_while_revalidate: None,
                max_body: 1 << 20,
                statuses: Vec::new(),
                status_header: HeaderName::from_static("x-cache"),
                tags_header: HeaderName::from_static("surrogate-key"),
                uncacheable_for: Duration::from_secs(30),
                manifests: Manifests::default(),
                key: None,
                route_tags: None,
                route_name: None,
            },
            header_names: Vec::new(),
        }
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> ResponseCache<S> {
        ResponseCache::new(inner, Arc::clone(&self.config))
    }
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

/// The settings of a [`ResponseCacheLayer`]; [`build`](Self::build) checks them.
///
/// ```
/// use std::time::Duration;
/// use rtc::TaggedCache;
/// use rtc_http::ResponseCacheLayer;
///
/// let cache = TaggedCache::builder().in_memory().build()?;
/// let layer = ResponseCacheLayer::builder(cache)
///     .lifetime(Duration::from_secs(300))
///     .route_tags(|request| {
///         let path = request.uri.path();
///         path.strip_prefix("/books/").map(|id| format!("book:{id}"))
///     })
///     .stale_if_error(Duration::from_secs(3600))
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ResponseCacheBuilder {
    config: Config,
    /// Header names as given, checked by `build`: (setting, name).
    header_names: Vec<(&'static str, String)>,
}

impl ResponseCacheBuilder {
    /// How long a stored response is fresh (default 60 s). With
    /// [`lifetime_from_cache_control`](Self::lifetime_from_cache_control), the lifetime of a
    /// response that gives none. Zero is refused by `build`.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.config.lifetime = lifetime;
        self
    }

    /// Takes a response's `s-maxage`, else its `max-age`, as its lifetime (off by default: the
    /// layer's [`lifetime`](Self::lifetime) for every response). A response stored for a key
    /// is stored for the lifetime its previous response gave (the entry's lifetime is set
    /// before the request goes upstream), and not stored when it now asks for less.
    /// `max-age=0` makes a response uncacheable.
    pub fn lifetime_from_cache_control(mut self, follow: bool) -> Self {
        self.config.follow_cache_control = follow;
        self
    }

    /// How long a request waits for another request's upstream call for the same key (in this
    /// process or another) before it calls upstream itself (default 5 s). Zero is refused.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.config.lock_timeout = timeout;
        self
    }

    /// When the upstream fails (a 5xx or an error from the service), answers with the stored
    /// response if it is past its lifetime by at most `window`: never one whose tags were
    /// invalidated. Off by default; zero is refused.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.config.stale_if_error = Some(window);
        self
    }

    /// Answers with the stored response at once when it is past its lifetime by at most
    /// `window`, and refreshes it upstream in the background (one refresh across instances):
    /// never one whose tags were invalidated. Off by default; zero is refused.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.config.stale_while_revalidate = Some(window);
        self
    }

    /// The largest body stored, in bytes (default 1 MiB). A response whose body may be larger
    /// (its size hint says so, or gives no bound, as a streamed body does) is passed through
    /// as it streams, not stored. Zero is refused.
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.config.max_body = bytes;
        self
    }

    /// Also stores responses of this status (by default only 2xx; `404` and `301` are common
    /// additions). A 5xx is never stored: it is a failure, which `stale_if_error` may answer.
    pub fn cache_status(mut self, status: StatusCode) -> Self {
        if !status.is_server_error() && !self.config.statuses.contains(&status) {
            self.config.statuses.push(status);
        }
        self
    }

    /// The response header that says `hit`, `miss`, `stale` or `pass` (default `x-cache`).
    pub fn status_header(mut self, name: impl Into<String>) -> Self {
        self.header_names.push(("status_header", name.into()));
        self
    }

    /// The response header a handler may list tags in, separated by spaces or commas, as
    /// surrogate keys are (default `surrogate-key`). The layer removes it from every response.
    pub fn tags_header(mut self, name: impl Into<String>) -> Self {
        self.header_names.push(("tags_header", name.into()));
        self
    }

    /// How long a key whose response cannot be cached (`no-store`, `private`, `no-cache`,
    /// `Set-Cookie`, `Vary: *`, a body too large or streamed, a status not cached such as a
    /// 404 by default) goes upstream without a lookup and without the lock (default 30 s), so
    /// that concurrent requests for it are not made to wait for each other. A 5xx is not
    /// remembered: it is a failure, tried again by the next request. Zero is refused.
    pub fn uncacheable_for(mut self, duration: Duration) -> Self {
        self.config.uncacheable_for = duration;
        self
    }

    /// Replaces the default key (method class, path and normalised query) with `key`'s; the
    /// values of the headers the response's `Vary` names are still added to it.
    pub fn key(mut self, key: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        self.config.key = Some(Box::new(key));
        self
    }

    /// The tags of a request's route, known before it goes upstream: their versions are read
    /// first, so an invalidation during the upstream call makes the response miss.
    pub fn route_tags<F, I>(mut self, tags: F) -> Self
    where
        F: Fn(&Parts) -> I + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.config.route_tags = Some(Box::new(move |parts| {
            tags(parts).into_iter().map(Into::into).collect()
        }));
        self
    }

    /// The `route` label of the layer's metrics (feature `metrics`): by default `all`. With
    /// axum, `|request| request.extensions.get::<axum::extract::MatchedPath>()...` names the
    /// route pattern; never the path itself, which would make a label per URL.
    pub fn route_name(mut self, name: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        self.config.route_name = Some(Box::new(name));
        self
    }

    /// The layer, or what is wrong with its settings.
    pub fn build(mut self) -> Result<ResponseCacheLayer, BuildError> {
        let durations = [
            ("lifetime", Some(self.config.lifetime)),
            ("lock_timeout", Some(self.config.lock_timeout)),
            ("stale_if_error", self.config.stale_if_error),
            ("stale_while_revalidate", self.config.stale_while_revalidate),
            ("uncacheable_for", Some(self.config.uncacheable_for)),
        ];
        if let Some((setting, _)) = durations
            .iter()
            .find(|(_, duration)| duration.is_some_and(|duration| duration.is_zero()))
        {
            return Err(BuildError::ZeroDuration(setting));
        }
        if self.config.max_body == 0 {
            return Err(BuildError::ZeroBodyLimit);
        }
        for (setting, name) in std::mem::take(&mut self.header_names) {
            let header =
                HeaderName::try_from(name.as_str()).map_err(|_| BuildError::InvalidHeaderName {
                    setting,
                    name: name.clone(),
                })?;
            match setting {
                "status_header" => self.config.status_header = header,
                _ => self.config.tags_header = header,
            }
        }
        if self.config.status_header == self.config.tags_header {
            return Err(BuildError::SameHeader(
                self.config.status_header.to_string(),
            ));
        }
        Ok(ResponseCacheLayer {
            config: Arc::new(self.config),
        })
    }
}

impl fmt::Debug for ResponseCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheBuilder")
            .field("config", &self.config)
            .field("header_names", &self.header_names)
            .finish()
    }
}

/// What is wrong with a layer's settings ([`ResponseCacheBuilder::build`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A duration that cannot work at zero.
    #[error("rtc-http: `{0}` must be longer than zero")]
    ZeroDuration(&'static str),
    /// `max_body_size(0)`: nothing could be stored.
    #[error("rtc-http: `max_body_size` must be at least one byte")]
    ZeroBodyLimit,
    /// A header name that HTTP does not allow.
    #[error("rtc-http: `{setting}` is not a valid header name: {name:?}")]
    InvalidHeaderName {
        /// `status_header` or `tags_header`.
        setting: &'static str,
        /// The name given.
        name: String,
    },
    /// The status and tag headers have one name: the layer removes the tag header.
    #[error("rtc-http: `status_header` and `tags_header` are both {0:?}")]
    SameHeader(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> ResponseCacheBuilder {
        ResponseCacheLayer::builder(TaggedCache::builder().in_memory().build().unwrap())
    }

    #[test]
    fn bad_settings_are_errors_that_name_them() {
        let error = builder().lifetime(Duration::ZERO).build().unwrap_err();
        assert_eq!(error, BuildError::ZeroDuration("lifetime"));
        assert_eq!(
            builder()
                .stale_if_error(Duration::ZERO)
                .build()
                .unwrap_err(),
            BuildError::ZeroDuration("stale_if_error")
        );
        assert_eq!(
            builder().max_body_size(0).build().unwrap_err(),
            BuildError::ZeroBodyLimit
        );
        let error = builder().status_header("x cache").build().unwrap_err();
        assert!(error.to_string().contains("status_header"), "{error}");
        assert_eq!(
            builder().tags_header("X-Cache").build().unwrap_err(),
            BuildError::SameHeader("x-cache".into())
        );
    }

    #[test]
    fn header_names_are_taken_in_any_case() {
        let layer = builder()
            .status_header("X-Page-Cache")
            .tags_header("Cache-Tag")
            .build()
            .unwrap();
        assert_eq!(layer.config.status_header, "x-page-cache");
        assert_eq!(layer.config.tags_header, "cache-tag");
    }
}
