//! `LengthPrefixed` in every configuration: fuzzed chunking against one
//! piece, bare decoder against both streams, limits, encode round trips.
//!
//! Configuration bytes (all zero: socktools' `u32` big-endian length, limit
//! 4096, over-long frames fail):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | field: `% 10`: 0 `u32` BE, 1..=8 that many bytes, 9 varint |
//! | 1 | bit 0: little-endian; bit 1: canonical varints; `>> 2 % 10`: varint octets 10 - n |
//! | 2 | offset `% 8` (5..=7 mean 0) |
//! | 3 | adjustment: 0, then 1 `i64::MIN`, 2 `i64::MAX`, 3 `-2^40`, else `(b as i8) % 17` |
//! | 4 | bit 0: length includes the header; bit 1: skip over-long frames |
//! | 5..=7 | frame limit ([`Input::limit`], default 4096) |
//! | 8 | spare receive buffer for the streams |
#![no_main]

use framewire::framing::{Framing, LengthField, LengthPrefixed, OversizePolicy};
use framewire::varint::VarintRules;
use framewire_fuzz::{check_encode, check_framing, Input};
use libfuzzer_sys::fuzz_target;

/// The configuration and the longest header it reads.
fn config(input: &Input<'_>) -> (LengthPrefixed, usize) {
    let flags = input.byte(1);
    let (field, width) = match input.byte(0) % 10 {
        0 => (LengthField::U32_BE, 4),
        9 => {
            let rules = VarintRules {
                require_canonical: flags & 2 != 0,
                max_octets: 10 - usize::from(flags >> 2) % 10,
            };
            (LengthField::Varint(rules), rules.max_octets)
        }
        n => (LengthField::fixed(n, flags & 1 == 0), usize::from(n)),
    };
    let offset = match input.byte(2) % 8 {
        o @ 0..=4 => usize::from(o),
        _ => 0,
    };
    let adjustment = match input.byte(3) {
        0 => 0,
        1 => i64::MIN,
        2 => i64::MAX,
        3 => -(1 << 40),
        b => i64::from(b as i8 % 17),
    };
    let bits = input.byte(4);
    let oversize = if bits & 2 != 0 {
        OversizePolicy::Skip
    } else {
        OversizePolicy::Fail
    };
    let f = LengthPrefixed::new()
        .with_length_field(field)
        .with_offset(offset)
        .with_adjustment(adjustment)
        .with_includes_header(bits & 1 != 0)
        .with_max_frame_len(input.limit(5, 4096))
        .with_oversize(oversize);
    (f, offset + width)
}

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let (f, header) = config(&input);
    let spare = usize::from(input.byte(8));
    let bound = f.max_frame_len().max(header);
    check_framing(&f, bound, &input, spare);

    // The advertised payload range encodes, and just outside it does not.
    let (min, max) = (f.min_payload_len(), f.max_payload_len());
    if f.offset() == 0 && max <= 4096 {
        if min <= max && (min > 0 || max > 0 || f.encoded_len(&[]).is_ok()) {
            for len in [min, max] {
                let payload = vec![0x5a; len];
                assert!(
                    f.encoded_len(&payload).is_ok(),
                    "{f:?}: payload of {len} (range {min}..={max}) refused"
                );
                check_encode(&f, &payload);
            }
        }
        assert!(
            f.encoded_len(&vec![0; max + 1]).is_err(),
            "{f:?}: payload of max_payload_len + 1 = {} accepted",
            max + 1
        );
        if min > 0 && min <= 4097 {
            assert!(
                f.encoded_len(&vec![0; min - 1]).is_err(),
                "{f:?}: payload under min_payload_len accepted"
            );
        }
    }
    // Arbitrary payloads that encode decode back.
    check_encode(&f, input.data);
});
