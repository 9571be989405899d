//! Redis key layout.
//!
//! Every key rtc writes is `rtc:<kind>:<namespace id>:<32 hex digits>`, where the digits are the
//! first 128 bits of a SHA-256 over a domain label and the length-prefixed user strings, and the
//! namespace id is 48 bits of a SHA-256 of the namespace (so that an ACL can confine a user to
//! one namespace: `~rtc:?:<namespace id>:*`). The length prefixes make the
//! encoding injective (no pair of different inputs hashes the same bytes), the domain label keeps
//! entries, tags and the engine's own keys apart, and the namespace is part of every hash, so no
//! user string of any content or length can reach another namespace's keys. No key carries a
//! `{hash tag}`, so on Redis Cluster entries and tags spread over every shard.

use sha2::{Digest, Sha256};

/// Length of a key's hash in bytes (128 bits).
pub(crate) const ID_LEN: usize = 16;

/// Bytes of the namespace's hash in every key.
const NAMESPACE_ID_LEN: usize = 6;

/// A 128-bit tag identifier, stored inside entries for implicit tags.
pub(crate) type TagId = [u8; ID_LEN];

/// The kind of tag a [`TagKey`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TagDomain {
    /// A tag given by the user.
    User,
    /// The namespace-wide tag every entry carries (`invalidate_all`).
    Namespace,
    /// A tag the engine adds on behalf of a caller, e.g. one per decorated function.
    Implicit,
}

impl TagDomain {
    fn label(self) -> &'static [u8] {
        match self {
            TagDomain::User => b"rtc/tag",
            TagDomain::Namespace => b"rtc/all",
            TagDomain::Implicit => b"rtc/implicit",
        }
    }
}

/// The Redis key of one tag's version. Its text is held inline: a call makes a tag key for each
/// of its tags and drops it when it returns, with no allocation of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TagKey {
    id: TagId,
    key: RenderedKey,
}

impl TagKey {
    pub(crate) fn id(&self) -> &TagId {
        &self.id
    }

    pub(crate) fn as_str(&self) -> &str {
        self.key.as_str()
    }

    /// The key's bytes, as Redis names it (in a tracking message, for one).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.key.as_bytes()
    }
}

/// The Redis key of an entry, held inline like a tag's: an operation makes one for its entry and
/// drops it when it returns, with no allocation of its own. It reads as the `str` it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EntryKey(RenderedKey);

impl EntryKey {
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for EntryKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for EntryKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The keys of one entry's stampede lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LockKeys {
    /// Holds the token of the caller computing the entry.
    pub lock: String,
    /// A short-lived list that waiters block on until the value lands.
    pub wake: String,
}

/// Derives every key of one namespace. What does not depend on the call (the namespace id, the
/// namespace tag, hashers already fed their label and the namespace) is computed once.
#[derive(Clone, Debug)]
pub(crate) struct KeySpace {
    /// `<namespace id>`, as it stands in every key.
    id: String,
    namespace_tag: TagKey,
    entry_hasher: Sha256,
    lock_hasher: Sha256,
    user_tag_hasher: Sha256,
    implicit_tag_hasher: Sha256,
}

impl KeySpace {
    pub(crate) fn new(namespace: &str) -> Self {
        let fed = |label: &[u8]| {
            let mut hasher = Sha256::new();
            feed(&mut hasher, label);
            feed(&mut hasher, namespace.as_bytes());
            hasher
        };
        let id = hex(&fed(b"rtc/namespace").finalize()[..NAMESPACE_ID_LEN]);
        let mut space = Self {
            namespace_tag: TagKey {
                id: [0; ID_LEN],
                key: RenderedKey::default(),
            },
            id,
            entry_hasher: fed(b"rtc/entry"),
            lock_hasher: fed(b"rtc/lock"),
            user_tag_hasher: fed(TagDomain::User.label()),
            implicit_tag_hasher: fed(TagDomain::Implicit.label()),
        };
        let mut namespace_hasher = fed(TagDomain::Namespace.label());
        feed(&mut namespace_hasher, b"");
        space.namespace_tag = space.tag_from_id(truncate(namespace_hasher));
        space
    }

    /// The prefixes of this namespace's entry and tag keys (not its locks), for the near
    /// cache's tracking.
    pub(crate) fn tracked_prefixes(&self) -> Vec<String> {
        ["e", "t"]
            .iter()
            .map(|kind| format!("rtc:{kind}:{}:", self.id))
            .collect()
    }

    /// The pattern every key of this namespace matches, for ACL rules and `SCAN`.
    pub(crate) fn pattern(&self) -> String {
        format!("rtc:?:{}:*", self.id)
    }

    /// The tag key whose id an entry recorded.
    pub(crate) fn tag_from_id(&self, id: TagId) -> TagKey {
        let mut key = RenderedKey::default();
        self.render_into(&mut key, "t", &id, false);
        TagKey { key, id }
    }

    /// The tag every entry of the namespace carries.
    pub(crate) fn namespace_tag(&self) -> TagKey {
        self.namespace_tag.clone()
    }

    /// The key of a user tag.
    pub(crate) fn user_tag(&self, tag: &str) -> TagKey {
        self.tag_in(&self.user_tag_hasher, tag)
    }

    /// The key of an implicit tag (one the engine adds, such as a decorated function's own tag).
    pub(crate) fn implicit_tag(&self, name: &str) -> TagKey {
        self.tag_in(&self.implicit_tag_hasher, name)
    }

    /// The key of the entry identified by `key` (the concatenation of its parts: a decorated
    /// call's generated key is hashed without being built) and the canonical (sorted,
    /// deduplicated) `tags`.
    pub(crate) fn entry(&self, key: &[&str], sorted_tags: &[&str]) -> EntryKey {
        let mut hasher = self.entry_hasher.clone();
        feed_parts(&mut hasher, key);
        hasher.update((sorted_tags.len() as u64).to_le_bytes());
        for tag in sorted_tags {
            feed(&mut hasher, tag.as_bytes());
        }
        let mut key = RenderedKey::default();
        self.render_into(&mut key, "e", &truncate(hasher), false);
        EntryKey(key)
    }

    /// The stampede lock of an entry, and the list its waiters are woken through. The two share
    /// a `{hash tag}` (and so a cluster slot) because one script touches both.
    pub(crate) fn lock(&self, entry_key: &str) -> LockKeys {
        let mut hasher = self.lock_hasher.clone();
        feed(&mut hasher, entry_key.as_bytes());
        let slot = truncate(hasher);
        LockKeys {
            lock: self.render("l", &slot, true),
            wake: self.render("w", &slot, true),
        }
    }

    fn tag_in(&self, fed: &Sha256, name: &str) -> TagKey {
        let mut hasher = fed.clone();
        feed(&mut hasher, name.as_bytes());
        self.tag_from_id(truncate(hasher))
    }

    /// `rtc:<kind>:<namespace id>:<hash>`, the hash in braces (a cluster hash tag) when `slot`.
    fn render(&self, kind: &str, hash: &TagId, slot: bool) -> String {
        let mut key = RenderedKey::default();
        self.render_into(&mut key, kind, hash, slot);
        key.as_str().to_owned()
    }

    /// Writes `rtc:<kind>:<namespace id>:<hash in hex>`, the hash in braces with `slot`. The
    /// bytes are copied as they are: a tag's key is rendered on every call, for each of its tags.
    fn render_into(&self, key: &mut RenderedKey, kind: &str, hash: &TagId, slot: bool) {
        let mut hex = [0u8; 2 * ID_LEN];
        for (pair, &byte) in hex.chunks_exact_mut(2).zip(hash) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
        let (open, close): (&[u8], &[u8]) = if slot { (b"{", b"}") } else { (b"", b"") };
        for part in [
            b"rtc:",
            kind.as_bytes(),
            b":",
            self.id.as_bytes(),
            b":",
            open,
            &hex,
            close,
        ] {
            key.push(part);
        }
    }
}

/// Room for the longest key: `rtc:` + kind + `:` + namespace id + `:` + braces + hash.
const KEY_CAPACITY: usize = 8 + 2 * NAMESPACE_ID_LEN + 2 * ID_LEN + 2;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Each byte's two hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX_DIGITS[byte >> 4], HEX_DIGITS[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// A key's text held inline, in room for the longest key. Only ASCII is ever pushed.
#[derive(Clone)]
struct RenderedKey {
    bytes: [u8; KEY_CAPACITY],
    len: u8,
}

impl PartialEq for RenderedKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RenderedKey {}

impl std::hash::Hash for RenderedKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for RenderedKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(formatter)
    }
}

impl Default for RenderedKey {
    fn default() -> Self {
        Self {
            bytes: [0; KEY_CAPACITY],
            len: 0,
        }
    }
}

impl RenderedKey {
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Appends `part`; nothing past the room for the longest key (which no key reaches).
    fn push(&mut self, part: &[u8]) {
        let start = usize::from(self.len);
        let end = start + part.len();
        if let (Some(slot), Ok(len)) = (self.bytes.get_mut(start..end), u8::try_from(end)) {
            slot.copy_from_slice(part);
            self.len = len;
        }
    }
}

/// Feeds one length-prefixed field, so that field boundaries are part of the hash.
fn feed(hasher: &mut Sha256, bytes: &[u8]) {
    feed_parts(hasher, &[bytes]);
}

/// [`feed`] of the field that is the concatenation of `parts`: the same bytes.
fn feed_parts<T: AsRef<[u8]>>(hasher: &mut Sha256, parts: &[T]) {
    let len: usize = parts.iter().map(|part| part.as_ref().len()).sum();
    hasher.update((len as u64).to_le_bytes());
    for part in parts {
        hasher.update(part.as_ref());
    }
}

fn truncate(hasher: Sha256) -> TagId {
    let digest = hasher.finalize();
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&digest[..ID_LEN]);
    id
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        text.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_boundaries_are_part_of_the_entry_key() {
        let space = KeySpace::new("ns");
        assert_ne!(space.entry(&["ab"], &["c"]), space.entry(&["a"], &["bc"]));
        assert_ne!(
            space.entry(&["a"], &["b", "c"]),
            space.entry(&["a"], &["bc"])
        );
        assert_ne!(space.entry(&["a"], &[]), space.entry(&["a"], &[""]));
    }

    #[test]
    fn an_entry_key_is_its_layout_s_hash_whatever_parts_its_key_comes_in() {
        // Worked out by hand from the layout (SHA-256 of the length-prefixed label, namespace
        // and key, the tag count as 8 little-endian bytes, and each length-prefixed tag): keys
        // already in Redis stay where they are.
        let space = KeySpace::new("ns");
        let expected = "rtc:e:713142ec75d5:4fc7595b4b65c91a28178b676403a616";
        assert_eq!(
            space.entry(&["app::f([7])"], &["user:7"]).as_str(),
            expected
        );
        assert_eq!(
            space
                .entry(&["app::f", "(", "[7]", ")"], &["user:7"])
                .as_str(),
            expected
        );
        assert_eq!(
            space.entry(&["", "app::f([7])", ""], &["user:7"]).as_str(),
            expected
        );
    }

    #[test]
    fn namespaces_and_domains_never_share_keys() {
        let one = KeySpace::new("one");
        let two = KeySpace::new("two");
        assert_ne!(one.entry(&["k"], &[]), two.entry(&["k"], &[]));
        assert_ne!(one.user_tag("t"), two.user_tag("t"));
        assert_ne!(one.user_tag(""), one.namespace_tag());
        assert_ne!(one.user_tag("f"), one.implicit_tag("f"));
    }

    /// The layout is shared with every other process and version on the same server: these
    /// were computed outside rtc (SHA-256 of the length-prefixed fields, in Python).
    #[test]
    fn keys_render_as_the_layout_says() {
        let space = KeySpace::new("ns");
        assert_eq!(
            space.user_tag("user:42").as_str(),
            "rtc:t:713142ec75d5:91d42b3cdbc30b54dc19592ed2715a84"
        );
        assert_eq!(
            space.lock("k").lock,
            "rtc:l:713142ec75d5:{c91cd111ab66e778dacb98b8a3f56317}"
        );
    }

    #[test]
    fn tag_keys_round_trip_through_their_id() {
        let space = KeySpace::new("ns");
        let tag = space.user_tag("user:42");
        assert_eq!(space.tag_from_id(*tag.id()), tag);
        assert!(tag.as_str().starts_with("rtc:t:"));
        assert_eq!(tag.as_str().len(), "rtc:t::".len() + 12 + 32);
    }

    #[test]
    fn every_key_of_a_namespace_matches_its_pattern() {
        let space = KeySpace::new("shop");
        let pattern = space.pattern();
        let prefix = pattern.trim_start_matches("rtc:?").trim_end_matches('*');
        let lock = space.lock(&space.entry(&["k"], &[]));
        for key in [
            space.entry(&["k"], &["t"]).to_string(),
            space.user_tag("t").as_str().to_owned(),
            lock.lock,
            lock.wake,
        ] {
            assert_eq!(&key[5..5 + prefix.len()], prefix, "{key} against {pattern}");
        }
        assert_ne!(KeySpace::new("other").pattern(), pattern);
    }
}
