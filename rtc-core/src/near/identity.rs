//! What a near lookup names ([`Named`]), and what an entry keeps of it to tell apart lookups
//! whose hashes collide ([`Identity`]).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a lookup names: the entry's key, for a decorated function its identity (two functions
/// may share a key, not a value type), and the entry's tags as the caller gave them. An entry
/// is kept under its function and key: read again with other tags, it is not an answer, and
/// the value read from Redis for those tags replaces it.
///
/// A decorated call site whose tags are made from its key arguments alone (see
/// [`KeyedTags`]) may look its entry up before it builds its tags: that lookup names the site
/// instead, and finds only what the same site kept.
#[derive(Debug)]
pub(crate) struct Named<'a, S> {
    function: &'static str,
    key: &'a [u8],
    tags: Option<&'a [S]>,
    site: Option<&'static KeyedTags>,
}

impl<'a, S: AsRef<str>> Named<'a, S> {
    pub(crate) fn new(
        function: &'static str,
        key: &'a (impl AsRef<[u8]> + ?Sized),
        tags: &'a [S],
    ) -> Self {
        Self {
            function,
            key: key.as_ref(),
            tags: Some(tags),
            site: None,
        }
    }

    /// The entry of a call site whose tags follow from `key`, named before its tags are built.
    pub(crate) fn by_key(
        function: &'static str,
        key: &'a (impl AsRef<[u8]> + ?Sized),
        site: &'static KeyedTags,
    ) -> Self {
        Self {
            function,
            key: key.as_ref(),
            tags: None,
            site: Some(site),
        }
    }

    /// Kept for `site` too, whose later lookups may name it [by key](Named::by_key).
    pub(crate) fn kept_by(mut self, site: Option<&'static KeyedTags>) -> Self {
        self.site = site;
        self
    }

    /// The key's hash, seeded with the function's (which a site whose tags follow from its key
    /// works out once).
    pub(super) fn hash(&self) -> u64 {
        let function = match self.site {
            Some(site) => site.function_hash(self.function),
            None => function_hash(self.function),
        };
        foldhash::fast::FixedState::with_seed(function).hash_one(self.key)
    }

    pub(super) fn is(&self, identity: &Identity) -> bool {
        // Identities are `&'static str`s of one call site: the same pointer, but for lookups of
        // another site that collide, which compare by content.
        let same_entry = (std::ptr::eq(self.function, identity.function)
            || self.function == identity.function)
            && self.key == &*identity.key;
        same_entry
            && match (self.tags, self.site) {
                (Some(tags), _) => tags
                    .iter()
                    .map(AsRef::as_ref)
                    .eq(identity.tags.iter().map(|tag| &**tag)),
                (None, Some(site)) => identity.site.is_some_and(|kept| std::ptr::eq(kept, site)),
                (None, None) => false,
            }
    }

    pub(super) fn owned(&self) -> Identity {
        Identity {
            function: self.function,
            key: Box::from(self.key),
            tags: self
                .tags
                .unwrap_or_default()
                .iter()
                .map(|tag| Box::from(tag.as_ref()))
                .collect(),
            site: self.site,
        }
    }
}

/// A decorated call site whose tags are made from its key arguments alone: the macro gives one
/// (a `static` of the site, so its address tells sites apart) when every tag is a `format!` of
/// literals and key arguments and the key is generated from the arguments. The same key then
/// means the same tags, so such a site looks its near entry up before it builds them (their
/// text is most of a near hit's cost).
#[derive(Debug)]
pub struct KeyedTags {
    /// [`function_hash`] of the site's function, once worked out (0: not yet). Not zero-sized,
    /// so each site's static has an address of its own.
    function_hash: AtomicU64,
}

impl KeyedTags {
    /// One call site's mark.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self {
            function_hash: AtomicU64::new(0),
        }
    }

    /// [`function_hash`] of `function`, the site's, worked out on its first call.
    fn function_hash(&self, function: &str) -> u64 {
        match self.function_hash.load(Ordering::Relaxed) {
            0 => {
                let hash = function_hash(function);
                self.function_hash.store(hash, Ordering::Relaxed);
                hash
            }
            known => known,
        }
    }
}

/// What seeds the hash of a function's keys.
fn function_hash(function: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0).hash_one(function)
}

/// A [`Named`] kept with its entry, to tell apart lookups whose hashes collide.
#[derive(Debug)]
pub(super) struct Identity {
    function: &'static str,
    key: Box<[u8]>,
    tags: Box<[Box<str>]>,
    /// The call site that kept it, when its tags follow from its key.
    site: Option<&'static KeyedTags>,
}
