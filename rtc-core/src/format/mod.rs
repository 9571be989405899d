//! The pure format layer: key derivation, tag versions, the stored entry format and one entry's
//! keys. Nothing here knows Redis or does I/O; every backend stores these same bytes.

mod entry;
mod entry_keys;
mod keys;
mod version;

#[cfg(feature = "simulation")]
pub(crate) use self::entry::value_len;
pub use self::entry::MAX_TAGS;
pub(crate) use self::entry::{
    check, descended, encode, encode_with_window, header, is_live, is_tombstone, lineage,
    stale_window, tombstone, tombstone_lifetime, value_section, Freshness, Observed,
    UNRECORDED_CODEC,
};
pub(crate) use self::entry_keys::EntryKeys;
pub(crate) use self::keys::{KeySpace, LockKeys, TagKey};
pub(crate) use self::version::{unique_u64, Version};
