//! A layer's settings as its services read them ([`Config`]): a leaf, so that the service, the
//! upstream call and the answers made from an entry read them without reaching up to the layer
//! that builds them.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, StatusCode};
use rtc::TaggedCache;

use crate::manifests::Manifests;

pub(crate) type KeyFn = dyn Fn(&Parts) -> String + Send + Sync;
pub(crate) type TagsFn = dyn Fn(&Parts) -> Vec<String> + Send + Sync;

/// The settings of a layer, shared by its services.
pub(crate) struct Config {
    pub(crate) cache: TaggedCache,
    pub(crate) lifetime: Duration,
    pub(crate) follow_cache_control: bool,
    pub(crate) lock_timeout: Duration,
    pub(crate) stale_if_error: Option<Duration>,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) max_body: u64,
    pub(crate) statuses: Vec<StatusCode>,
    pub(crate) status_header: HeaderName,
    pub(crate) tags_header: HeaderName,
    pub(crate) uncacheable_for: Duration,
    pub(crate) manifests: Manifests,
    pub(crate) key: Option<Box<KeyFn>>,
    pub(crate) route_tags: Option<Box<TagsFn>>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) route_name: Option<Box<KeyFn>>,
}

impl Config {
    /// The request's key, before `Vary`: the application's, or method class, path and query.
    pub(crate) fn key(&self, parts: &Parts) -> String {
        match &self.key {
            Some(key) => key(parts),
            None => crate::key::default_key(parts),
        }
    }

    /// The route's tags for this request.
    pub(crate) fn route_tags(&self, parts: &Parts) -> BTreeSet<String> {
        self.route_tags
            .as_ref()
            .map(|tags| tags(parts).into_iter().collect())
            .unwrap_or_default()
    }

    /// The route's name in metrics.
    #[cfg(feature = "metrics")]
    pub(crate) fn route_name(&self, parts: &Parts) -> String {
        match &self.route_name {
            Some(name) => name(parts),
            None => "all".to_owned(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("cache", &self.cache)
            .field("lifetime", &self.lifetime)
            .field("follow_cache_control", &self.follow_cache_control)
            .field("lock_timeout", &self.lock_timeout)
            .field("stale_if_error", &self.stale_if_error)
            .field("stale_while_revalidate", &self.stale_while_revalidate)
            .field("max_body", &self.max_body)
            .field("statuses", &self.statuses)
            .field("status_header", &self.status_header)
            .field("tags_header", &self.tags_header)
            .field("uncacheable_for", &self.uncacheable_for)
            .finish_non_exhaustive()
    }
}
