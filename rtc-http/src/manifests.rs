//! Where a lookup finds a key's manifest: in this process's copy when it has a recent one,
//! else in the cache (shared by every instance), then kept here for a few seconds.
//!
//! A manifest only says which tags to read and which headers to key on before going upstream;
//! what is stored is judged against what was actually read (`fetch`). So a copy that another
//! instance has since replaced costs at most a relearning, never a response whose tags were
//! invalidated: an entry found under the old tags carries their versions and misses once any
//! of them is invalidated.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rtc::{TaggedCache, NO_TAGS};

use crate::key::manifest_key;
use crate::stored::Manifest;

/// How long this process trusts its copy of a manifest before reading it again.
const KEPT_FOR: Duration = Duration::from_secs(10);
/// How many copies it keeps at most.
const MAX_KEPT: usize = 10_000;

/// The manifests this process has read or written lately, by the request's base key.
#[derive(Debug, Default)]
pub(crate) struct Manifests {
    kept: RwLock<HashMap<String, Kept>>,
}

#[derive(Debug)]
struct Kept {
    manifest: Arc<Manifest>,
    until: Instant,
}

impl Manifests {
    /// The manifest of `base`: this process's recent copy, or the cache's (the default one
    /// when it has none or cannot be reached).
    pub(crate) async fn read(&self, cache: &TaggedCache, base: &str) -> Arc<Manifest> {
        if let Some(manifest) = self.kept(base) {
            return manifest;
        }
        let manifest: Manifest = cache
            .get_async(manifest_key(base), NO_TAGS)
            .await
            .unwrap_or_default();
        self.keep(base, manifest, KEPT_FOR)
    }

    /// Writes the manifest of `base` to the cache for `lifetime`, and keeps it here.
    pub(crate) async fn write(
        &self,
        cache: &TaggedCache,
        base: &str,
        manifest: Manifest,
        lifetime: Duration,
    ) {
        cache
            .set_async(manifest_key(base), &manifest, NO_TAGS, lifetime)
            .await;
        self.keep(base, manifest, lifetime.min(KEPT_FOR));
    }

    fn kept(&self, base: &str) -> Option<Arc<Manifest>> {
        let kept = self.kept.read().ok()?;
        let found = kept.get(base)?;
        (Instant::now() < found.until).then(|| Arc::clone(&found.manifest))
    }

    fn keep(&self, base: &str, manifest: Manifest, time: Duration) -> Arc<Manifest> {
        let manifest = Arc::new(manifest);
        if let Ok(mut kept) = self.kept.write() {
            let now = Instant::now();
            if kept.len() >= MAX_KEPT {
                kept.retain(|_, found| now < found.until);
                if kept.len() >= MAX_KEPT {
                    kept.clear();
                }
            }
            let until = now + time;
            let manifest = Arc::clone(&manifest);
            kept.insert(base.to_owned(), Kept { manifest, until });
        }
        manifest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_written_manifest_is_read_back_here_and_by_another_process() {
        let cache = TaggedCache::builder().in_memory().build().unwrap();
        let here = Manifests::default();
        let learned = Manifest {
            tags: vec!["book:1".into()],
            ..Manifest::default()
        };
        assert_eq!(*here.read(&cache, "GET /").await, Manifest::default());
        here.write(&cache, "GET /", learned.clone(), Duration::from_secs(60))
            .await;
        assert_eq!(*here.read(&cache, "GET /").await, learned);
        let elsewhere = Manifests::default();
        assert_eq!(*elsewhere.read(&cache, "GET /").await, learned);
    }

    #[tokio::test]
    async fn the_copies_are_bounded() {
        let cache = TaggedCache::builder().in_memory().build().unwrap();
        let here = Manifests::default();
        for n in 0..MAX_KEPT + 10 {
            here.read(&cache, &format!("GET /{n}")).await;
        }
        assert!(here.kept.read().unwrap().len() <= MAX_KEPT);
    }
}
