//! The engine under the public API: lookups, stamped writes, invalidation and fail-open
//! reporting, shared by [`TaggedCache`]'s methods and the `#[cached]` support code.

use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::TaggedCache;
use crate::backend::{Backend, BackendError, ReadReply};
use crate::entry::{self, Observed};
use crate::flights::Flights;
use crate::keys::{LockKeys, TagKey};
use crate::request::{first_read, second_read, FirstRead, Lookup, Request};
use crate::stats::Counters;
use crate::version::Version;

/// The engine under the public API, shared with the `#[cached]` support code.
impl TaggedCache {
    pub(crate) fn request<I, S>(&self, key: &str, tags: I, implicit: Vec<TagKey>) -> Request
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Request::new(&self.inner.keys, key, tags, implicit)
    }

    pub(crate) fn lookup(&self, request: &Request) -> Lookup {
        let lookup = match self.inner.backend.read(&request.entry, request.tags()) {
            Ok(reply) => self.complete_lookup(request, reply),
            Err(error) => self.failed("read", &error),
        };
        self.count(&lookup);
        lookup
    }

    pub(crate) async fn lookup_async(&self, request: &Request) -> Lookup {
        let lookup = match self
            .inner
            .backend
            .read_async(&request.entry, request.tags())
            .await
        {
            Ok(reply) => self.complete_lookup_async(request, reply).await,
            Err(error) => self.failed("read", &error),
        };
        self.count(&lookup);
        lookup
    }

    /// Turns what a read returned into a hit or a miss, reading the versions of implicit tags
    /// the entry carries but the request did not name (one more round trip, rare).
    pub(crate) fn complete_lookup(&self, request: &Request, reply: ReadReply) -> Lookup {
        match first_read(request, reply.entry, &reply.versions) {
            FirstRead::Done(lookup) => lookup,
            FirstRead::Unobserved {
                observed,
                entry,
                tags,
            } => {
                let tags = self.tag_keys(tags);
                match self.inner.backend.read_tags(&tags) {
                    Ok(versions) => second_read(observed, entry, tags, &versions),
                    Err(error) => self.failed("read", &error),
                }
            }
        }
    }

    pub(crate) async fn complete_lookup_async(
        &self,
        request: &Request,
        reply: ReadReply,
    ) -> Lookup {
        match first_read(request, reply.entry, &reply.versions) {
            FirstRead::Done(lookup) => lookup,
            FirstRead::Unobserved {
                observed,
                entry,
                tags,
            } => {
                let tags = self.tag_keys(tags);
                match self.inner.backend.read_tags_async(&tags).await {
                    Ok(versions) => second_read(observed, entry, tags, &versions),
                    Err(error) => self.failed("read", &error),
                }
            }
        }
    }

    /// Writes `payload` stamped with the tags' versions as they are now.
    pub(crate) fn store(
        &self,
        request: &Request,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let result = self.inner.backend.write_stamped(
            &request.entry,
            request.unobserved(),
            payload,
            self.lifetimes(lifetime),
        );
        self.written(result)
    }

    pub(crate) async fn store_async(
        &self,
        request: &Request,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let result = self
            .inner
            .backend
            .write_stamped_async(
                &request.entry,
                request.unobserved(),
                payload,
                self.lifetimes(lifetime),
            )
            .await;
        self.written(result)
    }

    /// Gives every tag observed without a version one now (created atomically; where another
    /// writer got there first, its version is taken), so that a value computed from here on is
    /// stamped with versions from before its computation. `None` when the backend failed.
    pub(crate) fn complete_versions(&self, mut observed: Observed) -> Option<Observed> {
        let missing = observed.proposals();
        if missing.is_empty() {
            return Some(observed);
        }
        let tag_lifetime = self.inner.settings.lifetime_for_tags;
        match self.inner.backend.create_tags(&missing, tag_lifetime) {
            Ok(versions) => {
                observed.fill(&versions);
                Some(observed)
            }
            Err(error) => {
                self.failed("write", &error);
                None
            }
        }
    }

    pub(crate) async fn complete_versions_async(&self, mut observed: Observed) -> Option<Observed> {
        let missing = observed.proposals();
        if missing.is_empty() {
            return Some(observed);
        }
        let tag_lifetime = self.inner.settings.lifetime_for_tags;
        match self
            .inner
            .backend
            .create_tags_async(&missing, tag_lifetime)
            .await
        {
            Ok(versions) => {
                observed.fill(&versions);
                Some(observed)
            }
            Err(error) => {
                self.failed("write", &error);
                None
            }
        }
    }

    /// Writes `payload` stamped with `observed`, versions read (and completed) *before* it was
    /// computed, so that an invalidation landing during the computation makes it miss.
    pub(crate) fn store_observed(
        &self,
        request: &Request,
        observed: &Observed,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let Some(bytes) = crate::entry::encode(observed, payload) else {
            return self.written(Err(BackendError::TooManyTags));
        };
        let (lifetime, _) = self.lifetimes(lifetime);
        let seen = observed.tombstone.as_deref();
        let result = self
            .inner
            .backend
            .write_unless_deleted(&request.entry, bytes, lifetime, seen);
        self.written(result)
    }

    pub(crate) async fn store_observed_async(
        &self,
        request: &Request,
        observed: &Observed,
        payload: &[u8],
        lifetime: Option<Duration>,
    ) -> bool {
        let Some(bytes) = crate::entry::encode(observed, payload) else {
            return self.written(Err(BackendError::TooManyTags));
        };
        let (lifetime, _) = self.lifetimes(lifetime);
        let seen = observed.tombstone.as_deref();
        let result = self
            .inner
            .backend
            .write_unless_deleted_async(&request.entry, bytes, lifetime, seen)
            .await;
        self.written(result)
    }

    pub(crate) fn remove(&self, request: &Request) -> bool {
        let lifetime = self.tombstone_lifetime();
        match self
            .inner
            .backend
            .delete(&request.entry, entry::tombstone(), lifetime)
        {
            Ok(removed) => removed,
            Err(error) => {
                self.failed("delete", &error);
                false
            }
        }
    }

    pub(crate) async fn remove_async(&self, request: &Request) -> bool {
        let lifetime = self.tombstone_lifetime();
        let deleted = self
            .inner
            .backend
            .delete_async(&request.entry, entry::tombstone(), lifetime)
            .await;
        match deleted {
            Ok(removed) => removed,
            Err(error) => {
                self.failed("delete", &error);
                false
            }
        }
    }

    /// New versions for `tags`, ready for [`TaggedCache::bump`].
    pub(crate) fn bumps(&self, tags: impl IntoIterator<Item = TagKey>) -> Vec<(TagKey, Version)> {
        tags.into_iter()
            .map(|tag| (tag, Version::fresh()))
            .collect()
    }

    /// The keys of tags an entry recorded by id.
    fn tag_keys(&self, ids: Vec<crate::keys::TagId>) -> Vec<TagKey> {
        ids.into_iter()
            .map(|id| self.inner.keys.tag_from_id(id))
            .collect()
    }

    /// A decorated function's own tag, derived once per cache and function.
    pub(crate) fn function_tag(&self, site: &crate::decorate::Site) -> TagKey {
        let id = site.identity;
        if let Some(tag) = self
            .inner
            .function_tags
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return tag.clone();
        }
        let tag = self.inner.keys.implicit_tag(id);
        self.inner
            .function_tags
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tag.clone());
        tag
    }

    pub(crate) fn bump(&self, bumps: &[(TagKey, Version)]) -> bool {
        let result = self
            .inner
            .backend
            .bump(bumps, self.inner.settings.lifetime_for_tags);
        self.invalidated(result)
    }

    pub(crate) async fn bump_async(&self, bumps: &[(TagKey, Version)]) -> bool {
        let result = self
            .inner
            .backend
            .bump_async(bumps, self.inner.settings.lifetime_for_tags)
            .await;
        self.invalidated(result)
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Option<Vec<u8>> {
        match serde_json::to_vec(value) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                self.codec_trouble(format_args!(
                    "value could not be serialized, not caching it: {error}"
                ));
                None
            }
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Option<T> {
        match serde_json::from_slice(bytes) {
            Ok(value) => Some(value),
            Err(error) => {
                self.codec_trouble(format_args!("cached value does not decode as the requested type, treating it as a miss: {error}"));
                None
            }
        }
    }

    /// Logs (rate-limited) a value that could not be encoded or decoded.
    pub(crate) fn codec_trouble(&self, message: fmt::Arguments<'_>) {
        Counters::bump(&self.inner.counters.errors);
        if let Some(held_back) = self.inner.codec_warnings.permit() {
            tracing::warn!(namespace = %self.inner.settings.namespace, held_back, "rtc: {message}");
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(crate) fn hook(&self) -> Option<&crate::hook::Hook> {
        self.inner.settings.hook.as_ref()
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.flights
    }

    pub(crate) fn lock_keys(&self, request: &Request) -> LockKeys {
        self.inner.keys.lock(&request.entry)
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Reports a backend failure of a lock operation (rate-limited).
    pub(crate) fn lock_trouble(&self, error: &BackendError) {
        self.failed("lock", error);
    }

    /// How long a deleted entry's tombstone stays: as long as an entry written now would, so
    /// that a computation in flight cannot bring the entry back (one day when entries never
    /// expire).
    fn tombstone_lifetime(&self) -> Option<Duration> {
        Some(
            self.inner
                .settings
                .default_lifetime
                .unwrap_or(Duration::from_secs(86_400)),
        )
    }

    /// Entry lifetime for a write (`None` = the default, zero = never expires) and tag lifetime.
    /// The lifetime of entries stored without one of their own.
    pub(crate) fn default_lifetime(&self) -> Option<Duration> {
        self.inner.settings.default_lifetime
    }

    fn lifetimes(&self, lifetime: Option<Duration>) -> (Option<Duration>, Option<Duration>) {
        let entry = match lifetime {
            None => self.inner.settings.default_lifetime,
            Some(lifetime) if lifetime.is_zero() => None,
            Some(lifetime) => Some(lifetime),
        };
        (entry, self.inner.settings.lifetime_for_tags)
    }

    fn count(&self, lookup: &Lookup) {
        let counters = &self.inner.counters;
        match lookup {
            Lookup::Hit(..) => Counters::bump(&counters.hits),
            Lookup::Miss(_) | Lookup::Unavailable => Counters::bump(&counters.misses),
        }
    }

    fn written(&self, result: Result<bool, BackendError>) -> bool {
        match result {
            Ok(true) => {
                Counters::bump(&self.inner.counters.sets);
                true
            }
            Ok(false) => false,
            Err(error) => {
                self.failed("write", &error);
                false
            }
        }
    }

    fn invalidated(&self, result: Result<(), BackendError>) -> bool {
        match result {
            Ok(()) => {
                Counters::bump(&self.inner.counters.invalidations);
                true
            }
            Err(error) => {
                self.failed("invalidate", &error);
                false
            }
        }
    }

    /// Reports a backend failure (rate-limited) and turns it into an unavailable lookup.
    fn failed(&self, operation: &'static str, error: &BackendError) -> Lookup {
        if !error.is_quiet() {
            Counters::bump(&self.inner.counters.errors);
            if let Some(held_back) = self.inner.backend_warnings.permit() {
                tracing::warn!(
                    namespace = %self.inner.settings.namespace,
                    operation,
                    held_back,
                    "rtc: {error}; the call goes on without the cache"
                );
            }
        }
        Lookup::Unavailable
    }
}
