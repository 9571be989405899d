//! The stored entry format and the freshness check.
//!
//! An entry is the value's bytes behind a header that records the version of every tag the entry
//! carried when it was written:
//!
//! ```text
//! offset  size      field
//! 0       1         format (FORMAT_V2 = 2, FORMAT_V3 = 3, FORMAT_V4 = 4; FORMAT_V1 = 1 is
//!                   still read)
//! 1       2         C: number of canonical tags, little endian (the namespace tag + the user tags)
//! 3       2         X: number of implicit tags, little endian
//! (5      4         formats 3 and 4: W, the stale window in ms, little endian)
//! (9      8         format 4 only: D, the token of the tombstone this entry descends from)
//! 5 (9,17) 8·C      the canonical tags' versions, in canonical order
//! …       24·X      per implicit tag: its 16-byte id, then its 8-byte version
//! …       rest      the value section: format 2, a codec id (1 byte) then the value as that
//!                   codec wrote it (see `crate::codec`); format 1, the value alone
//! ```
//!
//! Formats 1 and 2 differ only in the value section: format 1 (rtc 0.1) did not record the
//! codec, so its value is JSON or a custom serializer's bytes. Format 3 is format 2 with a stale
//! window: the entry was stored to live its lifetime plus W, and it is fresh only while more
//! than W of that is left (see [`stale_window`]); it is written only when W > 0, so entries of
//! callers that use no stale option stay format 2. Format 4 is format 3 (W may be 0) with the
//! token D of a delete: it is written by a computation that read a tombstone, or an entry of
//! format 4, before computing. Tag checks are the same for all four. The value section is opaque
//! to this layer, to the backends and to the Lua scripts (which read the first byte, and D).
//!
//! A deleted entry is a *tombstone*: format 0 followed by a random token. Readers treat it as a
//! miss. A computed value is written only over an entry of the *lineage* its writer read before
//! computing: the tombstone it read, or an entry descending from it (format 4 with that token),
//! or, if it read neither, an entry of no lineage (formats 1 to 3) or none. So `delete` wins over
//! a computation that was in flight, also once a computation that started after the delete has
//! replaced the tombstone with its value (the simulator found that gap: `tests/simulation.rs`).
//!
//! Canonical tags are known to every reader (they are part of the entry's identity), so only their
//! versions are stored. Implicit tags (a decorated function's own tag) are not part of the identity,
//! so a reader may not know them: their ids are stored so that any reader can check them.

use std::time::Duration;

use super::keys::{TagId, TagKey, ID_LEN};
use super::version::{Version, VERSION_LEN};

/// Live entries of rtc 0.1: the value section holds no codec id. Read, never written.
pub(crate) const FORMAT_V1: u8 = 1;
/// The format of live entries written today: the value section starts with a codec id. A later
/// format gets a new number and the older ones can still be read.
pub(crate) const FORMAT_V2: u8 = 2;
/// Format 2 with a stale window after the counts: written when the window is not zero.
pub(crate) const FORMAT_V3: u8 = 3;
/// Format 3 with the token of the tombstone the entry descends from after the window: written
/// by a computation that read a tombstone (or an entry of this format) before computing.
pub(crate) const FORMAT_V4: u8 = 4;
/// A deleted entry.
pub(crate) const FORMAT_TOMBSTONE: u8 = 0;
const HEADER_LEN: usize = 5;
const WINDOW_LEN: usize = 4;
/// The length of a tombstone's token (format 4's D).
const TOKEN_LEN: usize = 8;
const EXTRA_LEN: usize = ID_LEN + VERSION_LEN;

/// The most tags one entry may carry (the header counts them in 16 bits).
pub const MAX_TAGS: usize = u16::MAX as usize;

/// The tags an entry is checked against, with the versions a reader observed for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// Canonical tags in canonical order, with their current versions (`None`: the tag has no version).
    pub canonical: Vec<(TagKey, Option<Version>)>,
    /// Implicit tags, with their current versions.
    pub implicit: Vec<(TagKey, Option<Version>)>,
    /// The tombstone found under the entry key, or the one the entry found there descends
    /// from (its lineage, [`lineage`]), if any: a computed value written with these
    /// observations replaces only an entry of the same lineage, and carries it on.
    pub tombstone: Option<Vec<u8>>,
}

impl Observed {
    /// Every tag, canonical first.
    pub fn all(&self) -> impl Iterator<Item = &(TagKey, Option<Version>)> {
        self.canonical.iter().chain(self.implicit.iter())
    }

    /// A fresh version proposed for every tag that has none, for a write that creates them.
    pub fn proposals(&self) -> Vec<(TagKey, Version)> {
        self.all()
            .filter(|(_, version)| version.is_none())
            .map(|(tag, _)| (tag.clone(), Version::fresh()))
            .collect()
    }

    /// Gives the tags that have no version `versions`, in order (what creating
    /// [`Observed::proposals`] returned).
    pub fn fill(&mut self, versions: &[Version]) {
        let slots = self
            .canonical
            .iter_mut()
            .chain(self.implicit.iter_mut())
            .filter(|(_, version)| version.is_none());
        for ((_, slot), version) in slots.zip(versions) {
            *slot = Some(*version);
        }
    }

    /// True when a value stamped with `stamp` is fresh for a reader that observed `self`: the
    /// same tags, and every version this reader saw is the stamp's. A tag this reader saw
    /// without a version admits nothing: the tag may have been invalidated, then lost (a
    /// restart, `FLUSHALL`, eviction, expiry) before the reader looked, so a stamp read before
    /// that invalidation would pass (the simulator's seed 262 found it: `tests/simulation.rs`).
    /// A reader that found a tombstone admits only a stamp read with that same tombstone: the
    /// entry was deleted (`invalidate_<fn>(args)`) after a stamp read without it, so that
    /// value may be older than the delete, whatever its tags say (the simulator found it too).
    pub fn admits(&self, stamp: &Observed) -> bool {
        let pairs = |observed: &Observed| observed.all().count();
        let tombstone_seen = self.tombstone.is_none() || self.tombstone == stamp.tombstone;
        tombstone_seen
            && pairs(self) == pairs(stamp)
            && self
                .all()
                .zip(stamp.all())
                .all(|((tag, seen), (stamped_tag, stamped))| {
                    // The simulator's `unversioned` mutant: the rule before the simulator.
                    #[cfg(feature = "simulation")]
                    if seen.is_none() && crate::mutants::active(crate::mutants::Mutant::Unversioned)
                    {
                        return tag == stamped_tag;
                    }
                    tag == stamped_tag && seen.is_some() && seen == stamped
                })
    }

    fn implicit_version(&self, id: &TagId) -> Option<Option<Version>> {
        self.implicit
            .iter()
            .find(|(tag, _)| tag.id() == id)
            .map(|(_, version)| *version)
    }
}

/// What a stored entry is, measured against the tag versions a reader observed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Freshness<'a> {
    /// Every tag still has the version the entry was written with: here is the value.
    Fresh(&'a [u8]),
    /// A tag changed or vanished, or the bytes are not an entry of this shape.
    Stale,
    /// The entry carries implicit tags the reader did not observe; observe them and ask again.
    Unobserved(Vec<TagId>),
}

/// Checks `bytes` against `observed`.
pub(crate) fn check<'a>(bytes: &'a [u8], observed: &Observed) -> Freshness<'a> {
    let Some(layout) = Layout::parse(bytes) else {
        return Freshness::Stale;
    };
    if layout.canonical != observed.canonical.len() {
        return Freshness::Stale;
    }
    let versions = bytes[layout.header_len()..].chunks_exact(VERSION_LEN);
    for (stored, (_, current)) in versions.zip(&observed.canonical) {
        if current.as_ref().map(Version::as_bytes) != Some(stored) {
            return Freshness::Stale;
        }
    }
    let mut unobserved = Vec::new();
    for extra in layout.extras(bytes).chunks_exact(EXTRA_LEN) {
        let (id, stored) = extra.split_at(ID_LEN);
        let id: TagId = id.try_into().expect("split at ID_LEN");
        match observed.implicit_version(&id) {
            Some(Some(current)) if current.as_bytes() == stored => {}
            Some(_) => return Freshness::Stale,
            None => unobserved.push(id),
        }
    }
    if unobserved.is_empty() {
        Freshness::Fresh(&bytes[layout.payload_start()..])
    } else {
        Freshness::Unobserved(unobserved)
    }
}

/// A tombstone: what `delete` leaves under an entry key.
pub(crate) fn tombstone() -> Vec<u8> {
    let mut bytes = vec![FORMAT_TOMBSTONE];
    bytes.extend_from_slice(&super::version::unique_u64().to_le_bytes());
    bytes
}

/// The shortest time a tombstone stays. A computed value is stored only while its call is
/// younger than its tombstones' lifetime (see `decorate::protocol`), so that a delete's
/// tombstone outlives every computation that read before it; this floor keeps that true for
/// computations slower than a short entry lifetime.
pub(crate) const TOMBSTONE_FLOOR: Duration = Duration::from_secs(60);

/// How long a tombstone stays, for entries whose default lifetime is `entry_lifetime` (`None`:
/// they never expire): as long as such an entry, one day when entries never expire, and never
/// less than [`TOMBSTONE_FLOOR`].
pub(crate) fn tombstone_lifetime(entry_lifetime: Option<Duration>) -> Duration {
    entry_lifetime
        .unwrap_or(Duration::from_secs(86_400))
        .max(TOMBSTONE_FLOOR)
}

/// True for the bytes of a tombstone.
pub(crate) fn is_tombstone(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FORMAT_TOMBSTONE)
}

/// True for the bytes of a live entry (of any format this version can read).
pub(crate) fn is_live(bytes: &[u8]) -> bool {
    matches!(
        bytes.first(),
        Some(&(FORMAT_V1 | FORMAT_V2 | FORMAT_V3 | FORMAT_V4))
    )
}

/// The lineage of the stored `bytes`: the tombstone they are, or the one a format 4 entry
/// descends from (rebuilt from its token); `None` for an entry of no lineage.
pub(crate) fn lineage(bytes: &[u8]) -> Option<Vec<u8>> {
    match bytes.first() {
        Some(&FORMAT_TOMBSTONE) => Some(bytes.to_vec()),
        Some(&FORMAT_V4) => {
            let start = HEADER_LEN + WINDOW_LEN;
            let token = bytes.get(start..start + TOKEN_LEN)?;
            let mut tombstone = Vec::with_capacity(1 + TOKEN_LEN);
            tombstone.push(FORMAT_TOMBSTONE);
            tombstone.extend_from_slice(token);
            Some(tombstone)
        }
        _ => None,
    }
}

/// The stale window recorded in a live entry: it was stored to live its lifetime plus this, and
/// is fresh while more than this is left of its time to live. Zero for formats 1 and 2 (and
/// for bytes that are not an entry).
pub(crate) fn stale_window(bytes: &[u8]) -> Duration {
    let window = match bytes {
        [FORMAT_V3 | FORMAT_V4, _, _, _, _, w0, w1, w2, w3, ..] => {
            u32::from_le_bytes([*w0, *w1, *w2, *w3])
        }
        _ => 0,
    };
    Duration::from_millis(u64::from(window))
}

/// The live entry `bytes` (format 2, 3 or 4) as an entry of the lineage `tombstone`
/// (format 4, carrying its token), its stale window widened by `widen`: what a write stores
/// where an entry of that lineage was, living `widen` longer than its lifetime and window (so it
/// is fresh no longer) for the delete's guard to last. Other bytes come back as they are.
pub(crate) fn descended(bytes: Vec<u8>, tombstone: &[u8], widen: Duration) -> Vec<u8> {
    let (Some(token), Some(layout)) = (tombstone.get(1..1 + TOKEN_LEN), Layout::parse(&bytes))
    else {
        return bytes;
    };
    let window = match layout.extension {
        0 => 0,
        _ => u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]),
    };
    let window = window.saturating_add(window_millis(widen));
    let rest = &bytes[layout.header_len()..];
    let mut descended = Vec::with_capacity(HEADER_LEN + WINDOW_LEN + TOKEN_LEN + rest.len());
    descended.push(FORMAT_V4);
    descended.extend_from_slice(&bytes[1..HEADER_LEN]);
    descended.extend_from_slice(&window.to_le_bytes());
    descended.extend_from_slice(token);
    descended.extend_from_slice(rest);
    descended
}

/// The longest stale window the format records (`u32::MAX` ms, about 49 days); longer ones are
/// cut to it.
pub(crate) fn window_millis(window: Duration) -> u32 {
    u32::try_from(window.as_millis()).unwrap_or(u32::MAX)
}

/// The codec id of a value section that records none: that of every format 1 entry, written
/// before the codec was recorded (JSON or a custom serializer). The codec layer reads it as such.
pub(crate) const UNRECORDED_CODEC: u8 = 0;

/// Where the value section of the fresh entry `bytes` starts (`value_start` for a format 2 entry),
/// once it is made to start with a codec id. A format 1 entry has none: the byte just before
/// its value (the last of its header or versions, already checked) is overwritten with the id
/// of an unrecorded codec, so that every reader sees `codec id · value` without a copy.
pub(crate) fn value_section(bytes: &mut [u8], value_start: usize) -> usize {
    if bytes.first() != Some(&FORMAT_V1) || value_start == 0 {
        return value_start;
    }
    let start = value_start - 1;
    bytes[start] = UNRECORDED_CODEC;
    start
}

/// The whole stored entry (header, every tag's version, then `payload`, the value section), stamped with
/// `observed`'s versions. `None` when a tag has no version or there are more tags than the
/// format counts.
pub(crate) fn encode(observed: &Observed, payload: &[u8]) -> Option<Vec<u8>> {
    encode_with_window(observed, Duration::ZERO, payload)
}

/// [`encode`], recording a stale window (format 3) when `window` is not zero, and the lineage
/// of `observed` (format 4) when it has one.
pub(crate) fn encode_with_window(
    observed: &Observed,
    window: Duration,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut bytes = head(
        observed,
        window,
        VERSION_LEN * observed.canonical.len()
            + EXTRA_LEN * observed.implicit.len()
            + payload.len(),
    )?;
    for (_, version) in &observed.canonical {
        bytes.extend_from_slice(version.as_ref()?.as_bytes());
    }
    for (tag, version) in &observed.implicit {
        bytes.extend_from_slice(tag.id());
        bytes.extend_from_slice(version.as_ref()?.as_bytes());
    }
    bytes.extend_from_slice(payload);
    Some(bytes)
}

/// The header alone (format, counts, and the lineage's token when `observed` has one), for
/// writers that add versions themselves.
pub(crate) fn header(observed: &Observed) -> Option<Vec<u8>> {
    head(observed, Duration::ZERO, 0)
}

/// The header of an entry stamped with `observed` and recording `window`, in a buffer with
/// room for `rest` more bytes: format 2, 3 with a window, 4 with a lineage.
fn head(observed: &Observed, window: Duration, rest: usize) -> Option<Vec<u8>> {
    let [c0, c1] = u16::try_from(observed.canonical.len()).ok()?.to_le_bytes();
    let [i0, i1] = u16::try_from(observed.implicit.len()).ok()?.to_le_bytes();
    let window = window_millis(window);
    let token = observed
        .tombstone
        .as_deref()
        .and_then(|tombstone| tombstone.get(1..1 + TOKEN_LEN));
    let mut bytes = Vec::with_capacity(HEADER_LEN + WINDOW_LEN + TOKEN_LEN + rest);
    bytes.extend_from_slice(&[FORMAT_V2, c0, c1, i0, i1]);
    if let Some(token) = token {
        bytes[0] = FORMAT_V4;
        bytes.extend_from_slice(&window.to_le_bytes());
        bytes.extend_from_slice(token);
    } else if window > 0 {
        bytes[0] = FORMAT_V3;
        bytes.extend_from_slice(&window.to_le_bytes());
    }
    Some(bytes)
}

/// The length of the value section of the live entry `bytes`, whatever its tags say (the
/// simulator's `stale` mutant serves entries it should not).
#[cfg(feature = "simulation")]
pub(crate) fn value_len(bytes: &[u8]) -> Option<usize> {
    Layout::parse(bytes).map(|layout| bytes.len() - layout.payload_start())
}

struct Layout {
    canonical: usize,
    implicit: usize,
    /// The bytes after the counts and before the versions: the stale window (formats 3 and
    /// 4), then the lineage's token (format 4).
    extension: usize,
}

impl Layout {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let header = bytes.get(..HEADER_LEN)?;
        if !is_live(header) {
            return None;
        }
        let layout = Layout {
            canonical: usize::from(u16::from_le_bytes([header[1], header[2]])),
            implicit: usize::from(u16::from_le_bytes([header[3], header[4]])),
            extension: match header[0] {
                FORMAT_V3 => WINDOW_LEN,
                FORMAT_V4 => WINDOW_LEN + TOKEN_LEN,
                _ => 0,
            },
        };
        (bytes.len() >= layout.payload_start()).then_some(layout)
    }

    fn header_len(&self) -> usize {
        HEADER_LEN + self.extension
    }

    fn extras<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        let start = self.header_len() + self.canonical * VERSION_LEN;
        &bytes[start..self.payload_start()]
    }

    fn payload_start(&self) -> usize {
        self.header_len() + self.canonical * VERSION_LEN + self.implicit * EXTRA_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::KeySpace;
    use std::time::Duration;

    fn observed(canonical: &[Option<u64>], implicit: &[(&str, Option<u64>)]) -> Observed {
        let space = KeySpace::new("ns");
        Observed {
            tombstone: None,
            canonical: canonical
                .iter()
                .enumerate()
                .map(|(i, v)| (space.user_tag(&i.to_string()), v.map(Version::from_u64)))
                .collect(),
            implicit: implicit
                .iter()
                .map(|(name, v)| (space.implicit_tag(name), v.map(Version::from_u64)))
                .collect(),
        }
    }

    #[test]
    fn an_entry_is_fresh_while_every_version_matches() {
        let written = observed(&[Some(1), Some(2)], &[("f", Some(3))]);
        let bytes = encode(&written, b"value").unwrap();
        assert_eq!(check(&bytes, &written), Freshness::Fresh(b"value"));
    }

    #[test]
    fn a_changed_or_missing_version_makes_the_entry_stale() {
        let bytes = encode(&observed(&[Some(1), Some(2)], &[]), b"v").unwrap();
        assert_eq!(
            check(&bytes, &observed(&[Some(1), Some(9)], &[])),
            Freshness::Stale
        );
        assert_eq!(
            check(&bytes, &observed(&[Some(1), None], &[])),
            Freshness::Stale
        );
        assert_eq!(check(&bytes, &observed(&[Some(1)], &[])), Freshness::Stale);
    }

    #[test]
    fn unobserved_implicit_tags_are_reported_then_checked() {
        let bytes = encode(&observed(&[Some(1)], &[("f", Some(3))]), b"v").unwrap();
        let reader = observed(&[Some(1)], &[]);
        let Freshness::Unobserved(tags) = check(&bytes, &reader) else {
            panic!("expected unobserved tags");
        };
        assert_eq!(tags, vec![*KeySpace::new("ns").implicit_tag("f").id()]);
        let stale = observed(&[Some(1)], &[("f", Some(4))]);
        assert_eq!(check(&bytes, &stale), Freshness::Stale);
    }

    #[test]
    fn foreign_or_truncated_bytes_are_stale() {
        let reader = observed(&[Some(1)], &[]);
        let bytes = encode(&reader, b"v").unwrap();
        for cut in 0..bytes.len() - 1 {
            assert_eq!(
                check(&bytes[..cut], &reader),
                Freshness::Stale,
                "cut at {cut}"
            );
        }
        assert_eq!(check(b"{\"json\":1}", &reader), Freshness::Stale);
        assert_eq!(check(&[3, 0, 0, 0, 0], &reader), Freshness::Stale);
    }

    #[test]
    fn entries_are_written_in_format_2_and_format_1_is_still_checked() {
        let reader = observed(&[Some(1)], &[("f", Some(3))]);
        let mut bytes = encode(&reader, b"\x01\"v\"").unwrap();
        assert_eq!(bytes[0], FORMAT_V2);
        assert!(is_live(&bytes));
        bytes[0] = FORMAT_V1;
        assert!(is_live(&bytes));
        assert_eq!(check(&bytes, &reader), Freshness::Fresh(b"\x01\"v\""));
    }

    #[test]
    fn a_value_computed_over_a_tombstone_carries_it_in_format_4() {
        let deleted = tombstone();
        let reader = Observed {
            tombstone: Some(deleted.clone()),
            ..observed(&[Some(1)], &[("f", Some(3))])
        };
        for window in [Duration::ZERO, Duration::from_millis(1500)] {
            let bytes = encode_with_window(&reader, window, b"\x01\"v\"").unwrap();
            assert_eq!(bytes[0], FORMAT_V4);
            assert!(is_live(&bytes) && !is_tombstone(&bytes));
            assert_eq!(lineage(&bytes), Some(deleted.clone()));
            assert_eq!(stale_window(&bytes), window);
            assert_eq!(check(&bytes, &reader), Freshness::Fresh(b"\x01\"v\""));
            for cut in 0..bytes.len() - 5 {
                assert_eq!(
                    check(&bytes[..cut], &reader),
                    Freshness::Stale,
                    "cut at {cut}"
                );
            }
        }
        assert_eq!(lineage(&deleted), Some(deleted.clone()));
        let plain = encode(&observed(&[Some(1)], &[]), b"v").unwrap();
        assert_eq!(lineage(&plain), None);
    }

    #[test]
    fn an_entry_written_over_a_lineage_descends_from_it_with_its_window_widened() {
        let reader = observed(&[Some(1)], &[("f", Some(3))]);
        let deleted = tombstone();
        for window in [Duration::ZERO, Duration::from_millis(200)] {
            let bytes = encode_with_window(&reader, window, b"v").unwrap();
            let widened = descended(bytes, &deleted, Duration::from_millis(800));
            assert_eq!(widened[0], FORMAT_V4);
            assert_eq!(stale_window(&widened), window + Duration::from_millis(800));
            assert_eq!(lineage(&widened), Some(deleted.clone()));
            assert_eq!(check(&widened, &reader), Freshness::Fresh(b"v"));
        }
        // An entry of another lineage takes the new one; its window grows again.
        let other = Observed {
            tombstone: Some(tombstone()),
            ..reader.clone()
        };
        let bytes = encode_with_window(&other, Duration::from_millis(100), b"v").unwrap();
        let moved = descended(bytes, &deleted, Duration::from_millis(100));
        assert_eq!(lineage(&moved), Some(deleted.clone()));
        assert_eq!(stale_window(&moved), Duration::from_millis(200));
        assert_eq!(check(&moved, &reader), Freshness::Fresh(b"v"));
        // Bytes that are not a live entry come back as they are.
        assert_eq!(
            descended(deleted.clone(), &deleted, Duration::ZERO),
            deleted
        );
    }

    #[test]
    fn a_format_1_value_is_given_the_unrecorded_codec_id_in_place() {
        let reader = observed(&[Some(1)], &[]);
        let mut bytes = encode(&reader, b"{}").unwrap();
        let value_start = bytes.len() - 2;
        assert_eq!(value_section(&mut bytes, value_start), value_start);
        bytes[0] = FORMAT_V1;
        let start = value_section(&mut bytes, value_start);
        assert_eq!(&bytes[start..], b"\x00{}");
    }

    #[test]
    fn a_stamp_is_admitted_only_by_readers_that_saw_its_versions() {
        let stamp = observed(&[Some(1), Some(2)], &[("f", Some(3))]);
        assert!(stamp.admits(&stamp));
        assert!(!observed(&[None, Some(2)], &[("f", Some(3))]).admits(&stamp));
        assert!(!observed(&[Some(1), Some(2)], &[("f", None)]).admits(&stamp));
        assert!(!observed(&[Some(1), Some(9)], &[("f", Some(3))]).admits(&stamp));
        assert!(!observed(&[Some(1)], &[("f", Some(3))]).admits(&stamp));
        assert!(!observed(&[Some(1), Some(2)], &[("g", Some(3))]).admits(&stamp));
    }

    #[test]
    fn a_reader_that_found_a_tombstone_admits_only_a_stamp_read_with_it() {
        let stamp = observed(&[Some(1), Some(2)], &[("f", Some(3))]);
        let deleted = Observed {
            tombstone: Some(tombstone()),
            ..stamp.clone()
        };
        assert!(!deleted.admits(&stamp));
        assert!(deleted.admits(&deleted));
        let again = Observed {
            tombstone: Some(tombstone()),
            ..stamp.clone()
        };
        assert!(!again.admits(&deleted));
        // A reader that found no tombstone read before the delete, or after it expired.
        assert!(stamp.admits(&deleted));
    }

    #[test]
    fn a_stale_window_is_recorded_in_format_3_and_checked_like_format_2() {
        let reader = observed(&[Some(1)], &[("f", Some(3))]);
        let plain = encode(&reader, b"\x01\"v\"").unwrap();
        assert_eq!(stale_window(&plain), Duration::ZERO);
        let windowed =
            encode_with_window(&reader, Duration::from_millis(1500), b"\x01\"v\"").unwrap();
        assert_eq!(windowed[0], FORMAT_V3);
        assert_eq!(windowed.len(), plain.len() + WINDOW_LEN);
        assert!(is_live(&windowed));
        assert_eq!(stale_window(&windowed), Duration::from_millis(1500));
        assert_eq!(check(&windowed, &reader), Freshness::Fresh(b"\x01\"v\""));
        let invalidated = observed(&[Some(2)], &[("f", Some(3))]);
        assert_eq!(check(&windowed, &invalidated), Freshness::Stale);
        assert_eq!(stale_window(&tombstone()), Duration::ZERO);
        assert_eq!(window_millis(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    #[test]
    fn encoding_needs_a_version_for_every_tag() {
        assert!(encode(&observed(&[Some(1), None], &[]), b"v").is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_are_checked_without_panicking(
                bytes in proptest::collection::vec(any::<u8>(), 0..512),
                canonical in proptest::collection::vec(proptest::option::of(any::<u64>()), 0..4),
            ) {
                let reader = observed(&canonical, &[("f", Some(1))]);
                let _ = check(&bytes, &reader);
            }

            #[test]
            fn headers_that_claim_more_than_they_hold_are_stale(
                canonical in any::<u16>(),
                implicit in any::<u16>(),
                rest in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut bytes = vec![FORMAT_V1];
                bytes.extend_from_slice(&canonical.to_le_bytes());
                bytes.extend_from_slice(&implicit.to_le_bytes());
                bytes.extend_from_slice(&rest);
                let reader = observed(&[Some(1)], &[]);
                let fits = HEADER_LEN + usize::from(canonical) * VERSION_LEN + usize::from(implicit) * EXTRA_LEN <= bytes.len();
                if !fits {
                    prop_assert_eq!(check(&bytes, &reader), Freshness::Stale);
                }
            }

            #[test]
            fn what_is_encoded_reads_back_fresh(
                versions in proptest::collection::vec(any::<u64>(), 0..8),
                payload in proptest::collection::vec(any::<u8>(), 0..256),
            ) {
                let canonical: Vec<Option<u64>> = versions.iter().copied().map(Some).collect();
                let written = observed(&canonical, &[("f", Some(7))]);
                let bytes = encode(&written, &payload).unwrap();
                prop_assert_eq!(check(&bytes, &written), Freshness::Fresh(&payload[..]));
            }
        }
    }
}
