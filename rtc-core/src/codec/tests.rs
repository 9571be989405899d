use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Row {
    id: u64,
    name: String,
    score: f64,
    labels: Vec<String>,
    extra: Option<BTreeMap<String, i32>>,
}

fn row() -> impl Strategy<Value = Row> {
    (
        any::<u64>(),
        ".{0,40}",
        any::<i32>().prop_map(|quarters| f64::from(quarters) / 4.0),
        proptest::collection::vec("[a-z]{0,8}", 0..6),
        proptest::option::of(proptest::collection::btree_map(
            "[a-z]{1,6}",
            any::<i32>(),
            0..4,
        )),
    )
        .prop_map(|(id, name, score, labels, extra)| Row {
            id,
            name,
            score,
            labels,
            extra,
        })
}

/// Every codec this build has.
fn codecs() -> Vec<Codec> {
    vec![
        Codec::Json,
        #[cfg(feature = "postcard")]
        Codec::Postcard,
    ]
}

/// Every encoding worth trying: each codec, without and with compression.
fn encodings() -> Vec<Encoding> {
    codecs()
        .into_iter()
        .flat_map(|codec| {
            [None, Some(0), Some(64)].map(|compress_above| Encoding {
                codec,
                compress_above,
            })
        })
        .collect()
}

fn stored_serialization(section: &[u8]) -> u8 {
    section[0] & 0x0f
}

#[test]
fn every_encoding_records_its_codec_in_the_first_byte() {
    for encoding in encodings() {
        let section = encoding.encode(&"value").unwrap();
        assert_eq!(
            stored_serialization(&section),
            encoding.codec.serialization().id(),
            "{encoding:?}"
        );
    }
}

#[test]
fn a_reader_of_another_codec_gets_a_mismatch_not_a_value() {
    for writer in codecs() {
        let section = Encoding {
            codec: writer,
            compress_above: None,
        }
        .encode(&42u32)
        .unwrap();
        for reader in codecs().into_iter().filter(|reader| *reader != writer) {
            let read = Encoding {
                codec: reader,
                compress_above: None,
            }
            .decode::<u32>(&section);
            assert!(
                matches!(read, Err(Trouble::OtherFormat { .. })),
                "{writer:?} read as {reader:?}: {read:?}"
            );
        }
        assert!(matches!(
            open(&section, Serialization::Custom),
            Err(Trouble::OtherFormat { .. })
        ));
    }
}

#[test]
fn a_custom_serializers_bytes_are_not_read_by_a_serde_codec() {
    let section = seal_custom(b"42", None);
    assert_eq!(&*open(&section, Serialization::Custom).unwrap(), b"42");
    for codec in codecs() {
        let read = Encoding {
            codec,
            compress_above: None,
        }
        .decode::<u32>(&section);
        assert!(
            matches!(read, Err(Trouble::OtherFormat { .. })),
            "{codec:?}"
        );
    }
}

#[test]
fn format_1_values_are_read_by_json_and_custom_readers_only() {
    let mut legacy = vec![Serialization::Unrecorded.id()];
    legacy.extend_from_slice(b"[1,2]");
    assert_eq!(
        Encoding::default().decode::<Vec<u8>>(&legacy),
        Ok(vec![1, 2])
    );
    assert_eq!(&*open(&legacy, Serialization::Custom).unwrap(), b"[1,2]");
    #[cfg(feature = "postcard")]
    assert!(matches!(
        open(&legacy, Serialization::Postcard),
        Err(Trouble::OtherFormat { .. })
    ));
}

#[test]
fn an_empty_section_or_an_unknown_compression_is_a_miss() {
    assert_eq!(Encoding::default().decode::<u8>(&[]), Err(Trouble::Empty));
    let unknown = [Serialization::Json.id() | 0x70, b'1'];
    assert!(matches!(
        Encoding::default().decode::<u8>(&unknown),
        Err(Trouble::Compression(_))
    ));
}

#[test]
fn small_values_are_not_compressed() {
    let encoding = Encoding {
        codec: Codec::Json,
        compress_above: Some(1024),
    };
    let section = encoding.encode(&"short").unwrap();
    assert_eq!(section, b"\x01\"short\"");
}

#[cfg(feature = "lz4")]
mod lz4 {
    use super::*;

    #[test]
    fn large_values_are_compressed_and_read_back_by_any_threshold() {
        let text = "the same words again and again ".repeat(100);
        let section = Encoding {
            codec: Codec::Json,
            compress_above: Some(256),
        }
        .encode(&text)
        .unwrap();
        assert_eq!(section[0] >> 4, 1, "compressed");
        assert!(section.len() < text.len() / 4, "{} bytes", section.len());
        assert_eq!(Encoding::default().decode::<String>(&section), Ok(text));
    }

    #[test]
    fn values_that_do_not_shrink_are_stored_as_they_are() {
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let section = seal_custom(&noise, Some(0));
        assert_eq!(section[0] >> 4, 0);
        assert_eq!(&section[1..], &noise[..]);
    }

    #[test]
    fn a_length_beyond_what_the_block_could_hold_is_corrupt_without_allocating_it() {
        let mut section = vec![Serialization::Json.id() | 1 << 4];
        section.extend_from_slice(&u32::MAX.to_le_bytes());
        section.extend_from_slice(&[0x10, b'x']);
        assert_eq!(
            Encoding::default().decode::<String>(&section),
            Err(Trouble::Corrupt)
        );
    }

    proptest! {
        #[test]
        fn corrupt_compressed_bytes_are_a_miss_never_a_panic(
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut section = vec![Serialization::Json.id() | 1 << 4];
            section.extend_from_slice(&body);
            let _ = Encoding::default().decode::<Row>(&section);
        }

        #[test]
        fn flipped_bytes_in_a_compressed_value_never_panic(
            rows in proptest::collection::vec(row(), 4..12),
            position in any::<proptest::sample::Index>(),
            flip in 1..=255u8,
        ) {
            let encoding = Encoding { codec: Codec::Json, compress_above: Some(0) };
            let mut section = encoding.encode(&rows).unwrap();
            let at = 1 + position.index(section.len() - 1);
            section[at] ^= flip;
            let _ = encoding.decode::<Vec<Row>>(&section);
        }
    }
}

#[cfg(not(feature = "lz4"))]
#[test]
fn a_compressed_value_is_a_miss_in_a_build_without_lz4() {
    // What a build with `lz4` writes for a value it compressed: a JSON string of 13 bytes.
    let section = [
        0x11, 13, 0, 0, 0, 0xd0, b'"', b'a', b'a', b'a', b'a', b'a', b'a',
    ];
    assert!(matches!(
        Encoding::default().decode::<String>(&section),
        Err(Trouble::Compression(_))
    ));
}

proptest! {
    #[test]
    fn every_encoding_round_trips(rows in proptest::collection::vec(row(), 0..20)) {
        for encoding in encodings() {
            let section = encoding.encode(&rows).unwrap();
            prop_assert_eq!(encoding.decode::<Vec<Row>>(&section), Ok(rows.clone()));
        }
    }

    #[test]
    fn any_bytes_are_decoded_without_panicking(
        section in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        for encoding in encodings() {
            let _ = encoding.decode::<Vec<Row>>(&section);
        }
    }

    #[test]
    fn custom_bytes_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        threshold in proptest::option::of(0..400usize),
    ) {
        let section = seal_custom(&body, threshold);
        prop_assert_eq!(&*open(&section, Serialization::Custom).unwrap(), &body[..]);
    }
}
