//! `LengthPrefixed` in every configuration: fuzzed chunking against one
//! piece, bare decoder against both streams, limits, encode round trips.
#![no_main]

use arbitrary::Unstructured;
use framewire::framing::{Framing, LengthField, LengthPrefixed, OversizePolicy};
use framewire::varint::VarintRules;
use framewire_fuzz::{check_encode, check_framing, Input, MAX_FUZZ_LIMIT};
use libfuzzer_sys::fuzz_target;

/// A configuration and the longest header it reads.
fn config(u: &mut Unstructured<'_>) -> arbitrary::Result<(LengthPrefixed, usize)> {
    let kind: u8 = u.int_in_range(0..=9)?;
    let big_endian: bool = u.arbitrary()?;
    let (field, width) = if kind == 0 {
        let rules = VarintRules {
            require_canonical: u.arbitrary()?,
            max_octets: u.int_in_range(1..=10)?,
        };
        (LengthField::Varint(rules), usize::from(rules.max_octets))
    } else {
        let bytes = kind.min(8);
        (LengthField::fixed(bytes, big_endian), usize::from(bytes))
    };
    let offset = match u.int_in_range(0u8..=7)? {
        o @ 0..=4 => usize::from(o),
        _ => 0,
    };
    let adjustment = match u.int_in_range(0u8..=15)? {
        0 => i64::MIN,
        1 => i64::MAX,
        2 => -(1 << 40),
        _ => i64::from(u.int_in_range(-16i8..=16)?),
    };
    let max_frame_len = if u.ratio(1, 8)? {
        u.int_in_range(0..=MAX_FUZZ_LIMIT)?
    } else {
        u.int_in_range(0..=600)?
    };
    let oversize = if u.arbitrary()? { OversizePolicy::Skip } else { OversizePolicy::Fail };
    let f = LengthPrefixed::new()
        .with_length_field(field)
        .with_offset(offset)
        .with_adjustment(adjustment)
        .with_includes_header(u.arbitrary()?)
        .with_max_frame_len(max_frame_len)
        .with_oversize(oversize);
    Ok((f, offset + width))
}

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let mut u = input.config();
    let Ok((f, header)) = config(&mut u) else { return };
    let spare = usize::from(u.arbitrary::<u8>().unwrap_or(0));
    let bound = f.max_frame_len().max(header);
    check_framing(&f, bound, &input, spare);

    // The advertised payload range encodes, and just outside it does not.
    let (min, max) = (f.min_payload_len(), f.max_payload_len());
    if f.offset() == 0 && max <= 4096 {
        if min <= max && min <= 4096 && (min > 0 || max > 0 || f.encoded_len(&[]).is_ok()) {
            for len in [min, max] {
                let payload = vec![0x5a; len];
                assert!(f.encoded_len(&payload).is_ok(), "{f:?}: payload of {len} (range {min}..={max}) refused");
                check_encode(&f, &payload);
            }
        }
        assert!(f.encoded_len(&vec![0; max + 1]).is_err(), "{f:?}: payload of max_payload_len + 1 = {} accepted", max + 1);
        if min > 0 && min <= 4097 {
            assert!(f.encoded_len(&vec![0; min - 1]).is_err(), "{f:?}: payload under min_payload_len accepted");
        }
    }
    // Arbitrary payloads that encode decode back.
    check_encode(&f, input.data);
});
