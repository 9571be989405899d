//! How a value becomes the value section of an entry and back: a serde format, compression
//! above a size threshold, and the one-byte codec id in front that records both, so that a
//! reader never decodes bytes with a codec other than the one that wrote them.
//!
//! ```text
//! value section (entry format 2) = codec id (1 byte) · body
//! codec id = serialization (low 4 bits) | compression << 4
//!   serialization: 0 unrecorded (format 1 entries: JSON or a custom serializer), 1 JSON,
//!                  2 postcard, 15 a `#[cached(serializer = ...)]` function's own
//!   compression:   0 none, 1 LZ4 block (body = 4-byte little-endian length · block)
//! ```

mod compression;

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes a value section is given before it is serialized: a small value's whole size.
const SECTION_ROOM: usize = 128;

/// The serde format a cache (or one `#[cached]` function) stores its values in.
///
/// JSON is the default and needs no feature. The compact binary format, postcard, comes with
/// the cargo feature `postcard`: values are a third to a half the size of JSON and decode
/// several times faster (figures in `BENCHMARKS.md`). Each entry records the format it was
/// written in; a reader that expects another one counts a miss (and logs a rate-limited
/// warning) rather than decoding it, so switching formats is safe, if not free: every entry
/// written before the switch misses once.
///
/// ```
/// use rtc::{Codec, TaggedCache};
///
/// let cache = TaggedCache::builder()
///     .in_memory()
///     .codec(Codec::Json)
///     .build()
///     .unwrap();
/// # let _ = cache;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON through serde_json: readable with `redis-cli`, the default.
    #[default]
    Json,
    /// [postcard](https://docs.rs/postcard): a compact, varint-based binary format (feature
    /// `postcard`). Not self-describing: values must be read as the type they were written as.
    #[cfg(feature = "postcard")]
    Postcard,
}

impl Codec {
    fn serialization(self) -> Serialization {
        match self {
            Codec::Json => Serialization::Json,
            #[cfg(feature = "postcard")]
            Codec::Postcard => Serialization::Postcard,
        }
    }

    /// `value` as a value section without compression: the id, then the serialized value.
    fn serialize<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        // Room for a small value at once: grown from one byte, the buffer was copied at each
        // doubling.
        let mut section = Vec::with_capacity(SECTION_ROOM);
        section.push(self.serialization().id());
        match self {
            Codec::Json => {
                serde_json::to_writer(&mut section, value).map_err(|error| error.to_string())?;
                Ok(section)
            }
            #[cfg(feature = "postcard")]
            Codec::Postcard => {
                postcard::to_extend(value, section).map_err(|error| error.to_string())
            }
        }
    }

    fn deserialize<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_slice(body).map_err(|error| error.to_string()),
            #[cfg(feature = "postcard")]
            Codec::Postcard => postcard::from_bytes(body).map_err(|error| error.to_string()),
        }
    }
}

/// How values are written: a serde format and the size above which they are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub codec: Codec,
    /// Serialized values longer than this many bytes are compressed (`None`: never).
    pub compress_above: Option<usize>,
}

impl Encoding {
    /// `value` as a value section.
    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        let section = self.codec.serialize(value)?;
        Ok(compression::shrink(section, self.compress_above))
    }

    /// The value a value section holds, if this encoding's format wrote it.
    pub(crate) fn decode<T: DeserializeOwned>(self, section: &[u8]) -> Result<T, Trouble> {
        let body = open(section, self.codec.serialization())?;
        self.codec.deserialize(&body).map_err(Trouble::Undecodable)
    }
}

/// How a value section's body was serialized: the low 4 bits of its codec id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Serialization {
    /// A format 1 entry, written before the codec was recorded: JSON or a custom serializer.
    Unrecorded,
    Json,
    #[cfg_attr(not(feature = "postcard"), allow(dead_code))]
    Postcard,
    /// A `#[cached(serializer = ...)]` function's own bytes.
    Custom,
}

impl Serialization {
    pub(crate) const fn id(self) -> u8 {
        match self {
            Serialization::Unrecorded => crate::format::UNRECORDED_CODEC,
            Serialization::Json => 1,
            Serialization::Postcard => 2,
            Serialization::Custom => 15,
        }
    }

    /// True when a reader expecting `self` may decode a body that was written as `stored`.
    fn reads(self, stored: u8) -> bool {
        stored == self.id()
            || (stored == Serialization::Unrecorded.id()
                && matches!(self, Serialization::Json | Serialization::Custom))
    }
}

impl fmt::Display for Serialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(name(self.id()))
    }
}

fn name(serialization: u8) -> &'static str {
    match serialization {
        0 => "unrecorded (JSON or a custom serializer)",
        1 => "JSON",
        2 => "postcard",
        15 => "a custom serializer",
        _ => "an unknown codec",
    }
}

/// Why a value section could not be read; every one is a miss.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// The value section is empty.
    Empty,
    /// Written in another format than the reader's.
    OtherFormat { stored: u8, expected: Serialization },
    /// Compressed in a way this build cannot undo (a feature left out, or an unknown method).
    Compression(&'static str),
    /// The bytes do not decompress.
    #[cfg_attr(not(feature = "lz4"), allow(dead_code))]
    Corrupt,
    /// The body does not decode as the requested type.
    Undecodable(String),
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Empty => f.write_str("the cached value is empty"),
            Trouble::OtherFormat { stored, expected } => write!(
                f,
                "the cached value was written as {} but this reader expects {expected}",
                name(stored & 0x0f)
            ),
            Trouble::Compression(why) => {
                write!(f, "the cached value cannot be decompressed: {why}")
            }
            Trouble::Corrupt => f.write_str("the cached value's compressed bytes are corrupt"),
            Trouble::Undecodable(error) => {
                write!(
                    f,
                    "the cached value does not decode as the requested type: {error}"
                )
            }
        }
    }
}

/// A value section's body, if it was written as `expected`: decompressed when it was compressed.
pub(crate) fn open(section: &[u8], expected: Serialization) -> Result<Cow<'_, [u8]>, Trouble> {
    let (&id, body) = section.split_first().ok_or(Trouble::Empty)?;
    if !expected.reads(id & 0x0f) {
        return Err(Trouble::OtherFormat {
            stored: id,
            expected,
        });
    }
    compression::expand(id >> 4, body)
}

/// A value section's body whatever wrote it (decompressed when it was compressed): the value as
/// its codec serialized it.
pub(crate) fn body(section: &[u8]) -> Result<Cow<'_, [u8]>, Trouble> {
    let (&id, body) = section.split_first().ok_or(Trouble::Empty)?;
    compression::expand(id >> 4, body)
}

/// Puts the codec id in front of a custom serializer's bytes, and compresses them above
/// `compress_above`.
pub(crate) fn seal_custom(body: &[u8], compress_above: Option<usize>) -> Vec<u8> {
    let mut section = Vec::with_capacity(1 + body.len());
    section.push(Serialization::Custom.id());
    section.extend_from_slice(body);
    compression::shrink(section, compress_above)
}

#[cfg(test)]
mod tests;
