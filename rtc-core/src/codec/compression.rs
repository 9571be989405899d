//! Compression of value sections above a size threshold: LZ4 blocks through lz4_flex (feature
//! `lz4`). A section is compressed only when that makes it smaller; a build without the feature
//! writes no compressed section and reads one as a miss.

use std::borrow::Cow;

use super::Trouble;

/// The compression bits of a codec id: none.
const NONE: u8 = 0;
/// LZ4 block, behind its decompressed length (4 bytes, little endian).
#[cfg(feature = "lz4")]
const LZ4: u8 = 1;

/// `section` (a codec id, then the body), compressed when its body is longer than
/// `compress_above` and compression makes it smaller.
pub(super) fn shrink(section: Vec<u8>, compress_above: Option<usize>) -> Vec<u8> {
    let Some(threshold) = compress_above else {
        return section;
    };
    if section.len() - 1 <= threshold {
        return section;
    }
    compress(section)
}

#[cfg(feature = "lz4")]
fn compress(section: Vec<u8>) -> Vec<u8> {
    let (id, body) = (section[0], &section[1..]);
    let Ok(length) = u32::try_from(body.len()) else {
        return section;
    };
    let mut compressed =
        Vec::with_capacity(5 + lz4_flex::block::get_maximum_output_size(body.len()));
    compressed.push(id | LZ4 << 4);
    compressed.extend_from_slice(&length.to_le_bytes());
    compressed.extend_from_slice(&lz4_flex::block::compress(body));
    if compressed.len() < section.len() {
        compressed
    } else {
        section
    }
}

#[cfg(not(feature = "lz4"))]
fn compress(section: Vec<u8>) -> Vec<u8> {
    section
}

/// The body behind compression `method` (the high 4 bits of a codec id).
pub(super) fn expand(method: u8, body: &[u8]) -> Result<Cow<'_, [u8]>, Trouble> {
    match method {
        NONE => Ok(Cow::Borrowed(body)),
        #[cfg(feature = "lz4")]
        LZ4 => lz4(body).map(Cow::Owned),
        #[cfg(not(feature = "lz4"))]
        1 => Err(Trouble::Compression(
            "it is LZ4-compressed and this build lacks the `lz4` feature",
        )),
        _ => Err(Trouble::Compression("unknown compression method")),
    }
}

/// An LZ4 block behind its length. The length is checked against what the block could hold
/// (LZ4 expands at most 255-fold) before anything is allocated, so corrupt bytes cannot ask for
/// gigabytes.
#[cfg(feature = "lz4")]
fn lz4(body: &[u8]) -> Result<Vec<u8>, Trouble> {
    let (length, block) = body.split_first_chunk::<4>().ok_or(Trouble::Corrupt)?;
    let length = usize::try_from(u32::from_le_bytes(*length)).map_err(|_| Trouble::Corrupt)?;
    if length > block.len().saturating_mul(255).saturating_add(16) {
        return Err(Trouble::Corrupt);
    }
    let mut decompressed = vec![0; length];
    match lz4_flex::block::decompress_into(block, &mut decompressed) {
        Ok(written) if written == length => Ok(decompressed),
        _ => Err(Trouble::Corrupt),
    }
}
