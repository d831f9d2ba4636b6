//! The cs.packetstream packet format: parse of arbitrary bytes (limits, every
//! prefix of a packet is "incomplete", re-encoding reproduces canonical
//! input), and encode ∘ parse round trips of arbitrary packets.
//!
//! Input: 16 configuration bytes, then the bytes to parse (no chunk list).
//! Byte 0: bit 0 canonical varints, `>> 1 % 10` varint octets 10 - n;
//! 1..=2: the packet limit `m - 1` (0: none); 3..=15: the fields of the
//! packet built for the round trip (`Arbitrary`). All zero: the original's
//! lenient parsing without a limit.
#![no_main]
#![allow(clippy::many_single_char_names)]

use arbitrary::{Arbitrary, Unstructured};
use framewire::framing::{PacketCheck, PacketFraming};
use framewire::packet::wire::{Packet, ParseLimits, MAX_HEADER_LEN, MAX_PFLAGS};
use framewire::varint::{self, VarintRules};
use framewire_fuzz::Input;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Fields {
    channel: u64,
    tag: u64,
    pflags: u64,
    rq_type_wire: Option<u64>,
    small: bool,
}

/// Whether the packet at the start of `bytes` has the channel bit set in `F`.
fn explicit_channel(bytes: &[u8], limits: &ParseLimits) -> bool {
    let mut rest = bytes;
    let mut next = || {
        let (v, n) = varint::decode(rest, limits.varint).ok().flatten()?;
        rest = &rest[n..];
        Some(v)
    };
    let (_len, _tag, f) = (next(), next(), next());
    f.is_some_and(|f| f & 1 == 1)
}

fn check_parsed(bytes: &[u8], limits: &ParseLimits) {
    let strict = ParseLimits {
        varint: VarintRules {
            require_canonical: true,
            ..limits.varint
        },
        ..*limits
    };
    match Packet::parse(bytes, limits) {
        Ok(Some((p, n))) => {
            assert!(n <= bytes.len() && n <= limits.max_packet_len);
            assert_eq!(Packet::peek_len(bytes, limits), Ok(Some(n)));
            // Every proper prefix is just incomplete.
            for k in 0..n {
                assert_eq!(
                    Packet::parse(&bytes[..k], limits),
                    Ok(None),
                    "prefix of {k} of a {n}-byte packet"
                );
            }
            // The payload is the tail of the packet.
            assert!(bytes[..n].ends_with(p.payload()));
            // Accessors agree with each other.
            assert_eq!(p.is_request(), p.rq_type_wire().is_some());
            assert_eq!(p.response_status().is_some(), !p.is_request());
            assert_eq!(p.request_flags().is_some(), p.is_request());
            assert!(!(p.is_eof() && p.is_erq()));
            assert!(!(p.is_malformed_marker() && (p.is_eof() || p.is_erq())));
            // Re-encoding gives a packet that parses to the same fields.
            let mut out = vec![0u8; p.encoded_len()];
            assert_eq!(p.encode(&mut out), Ok(out.len()));
            let (q, m) = Packet::parse(
                &out,
                &ParseLimits {
                    max_packet_len: usize::MAX,
                    ..strict
                },
            )
            .expect("our encoding parses strictly")
            .expect("our encoding is complete");
            assert_eq!((q, m), (p, out.len()));
            // Canonical input is reproduced byte for byte.
            if let Ok(Some((s, sn))) = Packet::parse(bytes, &strict) {
                assert_eq!((s, sn), (p, n));
                // The one non-canonical form left: `F & 1` with an explicit
                // channel 0 (the original writes no channel field for 0).
                if out[..] != bytes[..n] {
                    assert!(
                        p.channel() == 0 && explicit_channel(bytes, &strict),
                        "canonical packet re-encodes differently"
                    );
                }
            }
            // The packet framing agrees.
            let framing = PacketFraming::with_limits(*limits);
            match framing.parse_exact(bytes) {
                Ok(e) => {
                    assert_eq!(n, bytes.len());
                    assert_eq!(e, p);
                }
                Err(PacketCheck::Trailing { len, actual }) => {
                    assert_eq!((len, actual), (n, bytes.len()));
                }
                Err(other) => panic!("parse gives a packet of {n}, parse_exact {other:?}"),
            }
        }
        Ok(None) => {
            let framing = PacketFraming::with_limits(*limits);
            assert!(matches!(
                framing.parse_exact(bytes),
                Err(PacketCheck::Truncated { .. })
            ));
            // Incomplete stays incomplete or becomes an error, never a
            // packet shorter than what was there.
            if let Ok(Some(total)) = Packet::peek_len(bytes, limits) {
                assert!(total > bytes.len());
                assert!(total <= limits.max_packet_len);
            }
        }
        Err(_) => {
            // An error is final: more bytes do not make it a packet.
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(&[0u8; 16]);
            assert!(
                Packet::parse(&longer, limits).is_err(),
                "error turned into a packet with more bytes"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse_raw(data);
    let limits = ParseLimits {
        max_packet_len: match input.u16(1) {
            0 => usize::MAX,
            m => usize::from(m - 1),
        },
        varint: VarintRules {
            require_canonical: input.byte(0) & 1 != 0,
            max_octets: 10 - usize::from(input.byte(0) >> 1) % 10,
        },
    };
    let mut u = Unstructured::new(&input.config[3..]);
    let Ok(fields) = Fields::arbitrary(&mut u) else {
        return;
    };
    let rest = input.data;
    check_parsed(rest, &limits);

    // Round trip of an arbitrary packet built from fields (small values
    // sometimes, to hit the one-byte varints and the markers).
    let f = if fields.small {
        Fields {
            channel: fields.channel % 3,
            tag: fields.tag % 3,
            pflags: fields.pflags % 3,
            rq_type_wire: fields.rq_type_wire.map(|w| w % 3),
            small: true,
        }
    } else {
        fields
    };
    let payload = &rest[..rest.len().min(64)];
    match Packet::from_parts(f.channel, f.tag, f.pflags, f.rq_type_wire, payload) {
        Ok(p) => {
            let mut header = [0u8; MAX_HEADER_LEN];
            let h = p.encode_header(&mut header);
            let mut out = vec![0u8; p.encoded_len()];
            let n = p.encode(&mut out).unwrap();
            assert_eq!(n, h + payload.len());
            assert_eq!(&out[..h], &header[..h]);
            assert!(p.encode(&mut out[..n - 1]).is_err());
            let all = ParseLimits {
                max_packet_len: usize::MAX,
                varint: VarintRules {
                    require_canonical: true,
                    max_octets: 10,
                },
            };
            let (q, m) = Packet::parse(&out, &all).unwrap().unwrap();
            assert_eq!((q, m), (p, n));
            assert_eq!(q.channel(), f.channel);
            assert_eq!(q.tag(), f.tag);
            assert_eq!(q.pflags(), f.pflags);
            assert_eq!(q.rq_type_wire(), f.rq_type_wire);
            assert_eq!(q.payload(), payload);
            check_parsed(&out, &limits);
        }
        Err(_) => assert!(f.pflags > MAX_PFLAGS),
    }
});
