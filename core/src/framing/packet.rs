//! cs.packetstream packets as frames: each frame is one whole packet
//! (`BSUInt(len(body)) body`, see [`crate::packet::wire`]), cut out of a byte
//! stream with the wire module's own parser.
//!
//! A packet is self-delimiting, so the payload of a frame is the **whole
//! packet**, length prefix included, like [`BsonDocument`](super::BsonDocument)
//! whose payload is the whole document. Encoding adds nothing: the header and
//! trailer are empty, and [`Framing::header`] only checks that the payload is
//! exactly one well-formed packet (the same rules as decoding: a complete
//! length prefix, a body holding every header field the `F` field calls for,
//! no bytes after the packet, within the limit). That is what lets a relay (the
//! WebSocket gateway) pass packets through unchanged while refusing anything
//! that would desynchronise the stream on the other side.
//!
//! Decoding checks the limit as soon as the length prefix is read, before any
//! of the body is awaited, and parses the header fields of every packet it
//! delivers, so a frame handed out is always a packet
//! [`Packet::parse`](crate::packet::wire::Packet::parse) accepts.

use super::{Decode, EncodeError, FrameError, FrameHeader, Framing, Oversize, OversizePolicy};
use crate::packet::wire::{Packet, PacketError, ParseLimits, DEFAULT_MAX_PACKET_LEN};
use crate::varint::VarintRules;

/// Whole cs.packetstream packets, one per frame; the payload is the packet.
///
/// Defaults: packets up to [`PacketFraming::DEFAULT_MAX_PACKET_LEN`] (16 MiB,
/// length prefix included, the same as `packet::Config::max_packet_len`),
/// varints read with the original's leniency ([`VarintRules::default`]), and
/// an over-long packet fails the stream.
///
/// ```
/// use framewire::framing::{Decode, Framing, PacketFraming};
/// // A request, tag 2, rq_type 0 (wire 1), payload "hello".
/// let packet = b"\x08\x02\x02\x01hello";
/// let mut f = PacketFraming::new();
/// assert_eq!(f.decode(&packet[..3]).unwrap(), Decode::Incomplete { need: Some(9) });
/// assert_eq!(f.decode(packet).unwrap(), Decode::Frame { len: 9, payload: 0..9 });
/// // Encoding checks that the payload is exactly one packet and adds nothing.
/// let mut out = [0u8; 9];
/// assert_eq!(f.encode(packet, &mut out), Ok(9));
/// assert!(f.encode(&packet[..8], &mut out).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PacketFraming {
    limits: ParseLimits,
    oversize: OversizePolicy,
}

impl Default for PacketFraming {
    fn default() -> Self {
        PacketFraming::new()
    }
}

impl PacketFraming {
    /// The default limit on a packet's size, length prefix included: 16 MiB
    /// ([`crate::packet::wire::DEFAULT_MAX_PACKET_LEN`], the packet
    /// connection's default `max_packet_len`).
    pub const DEFAULT_MAX_PACKET_LEN: usize = DEFAULT_MAX_PACKET_LEN;

    /// Packets up to 16 MiB, lenient varints, over-long packets fail.
    pub const fn new() -> Self {
        PacketFraming {
            limits: ParseLimits {
                max_packet_len: DEFAULT_MAX_PACKET_LEN,
                varint: VarintRules {
                    require_canonical: false,
                    max_octets: crate::varint::MAX_OCTETS,
                },
            },
            oversize: OversizePolicy::Fail,
        }
    }

    /// The framing that applies these parse limits (as a packet connection's
    /// `Config::parse_limits()` gives them).
    pub const fn with_limits(limits: ParseLimits) -> Self {
        PacketFraming {
            limits,
            oversize: OversizePolicy::Fail,
        }
    }

    /// Sets the largest packet accepted or sent, length prefix included.
    /// Default [`PacketFraming::DEFAULT_MAX_PACKET_LEN`].
    #[must_use]
    pub const fn with_max_packet_len(mut self, max: usize) -> Self {
        self.limits.max_packet_len = max;
        self
    }

    /// Sets how varints are read (strict rules refuse non-canonical forms,
    /// which the original accepts). Default [`VarintRules::default`].
    #[must_use]
    pub const fn with_varint_rules(mut self, rules: VarintRules) -> Self {
        self.limits.varint = rules;
        self
    }

    /// Sets what happens to a received packet over the limit: fail
    /// ([`FrameError::FrameTooLong`], the default) or skip it whole (its
    /// header fields are then not checked). A declared length so large that
    /// the packet's size does not fit a `u64` always fails.
    #[must_use]
    pub const fn with_oversize(mut self, policy: OversizePolicy) -> Self {
        self.oversize = policy;
        self
    }

    /// The parse limits in force.
    pub const fn limits(&self) -> ParseLimits {
        self.limits
    }

    /// The largest packet accepted, length prefix included.
    pub const fn max_packet_len(&self) -> usize {
        self.limits.max_packet_len
    }

    /// The over-long packet policy.
    pub const fn oversize(&self) -> OversizePolicy {
        self.oversize
    }

    /// Parses `bytes` as exactly one packet under this framing's limits.
    ///
    /// `Err(FrameError::Packet(_))` or `Err(FrameError::FrameTooLong { .. })`
    /// for bytes that are not a packet, [`PacketCheck::Truncated`] for a prefix
    /// of one, and [`PacketCheck::Trailing`] for a packet followed by more
    /// bytes.
    pub fn parse_exact<'a>(&self, bytes: &'a [u8]) -> Result<Packet<'a>, PacketCheck> {
        match Packet::parse(bytes, &self.limits) {
            Ok(Some((packet, len))) if len == bytes.len() => Ok(packet),
            Ok(Some((_, len))) => Err(PacketCheck::Trailing {
                len,
                actual: bytes.len(),
            }),
            Ok(None) => Err(PacketCheck::Truncated {
                need: Packet::peek_len(bytes, &self.limits).ok().flatten(),
                actual: bytes.len(),
            }),
            Err(e) => Err(PacketCheck::Invalid(frame_error(e))),
        }
    }
}

/// Why bytes are not exactly one packet ([`PacketFraming::parse_exact`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PacketCheck {
    /// The bytes break the packet format (or the limit).
    Invalid(FrameError),
    /// The bytes are the start of a packet: `need` bytes in all (if the length
    /// prefix is complete), `actual` present.
    Truncated {
        /// The packet's whole size, if the length prefix is complete.
        need: Option<usize>,
        /// The bytes given.
        actual: usize,
    },
    /// A packet of `len` bytes followed by more: `actual` bytes in all.
    Trailing {
        /// The first packet's size.
        len: usize,
        /// The bytes given.
        actual: usize,
    },
}

impl core::fmt::Display for PacketCheck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PacketCheck::Invalid(e) => e.fmt(f),
            PacketCheck::Truncated {
                need: Some(need),
                actual,
            } => write!(f, "truncated packet: {actual} of {need} bytes"),
            PacketCheck::Truncated { need: None, actual } => {
                write!(f, "truncated packet: {actual} bytes end inside the length")
            }
            PacketCheck::Trailing { len, actual } => {
                write!(f, "{actual} bytes hold a packet of {len} and more bytes")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PacketCheck {}

/// A wire error as a framing error: an over-long packet is the framings'
/// common [`FrameError::FrameTooLong`], the rest keep their detail.
fn frame_error(e: PacketError) -> FrameError {
    match e {
        PacketError::TooLong { len, max } => FrameError::FrameTooLong { len, max },
        other => FrameError::Packet(other),
    }
}

impl Framing for PacketFraming {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        let total = match Packet::peek_len(buf, &self.limits) {
            Ok(Some(total)) => total,
            Ok(None) => return Ok(Decode::Incomplete { need: None }),
            Err(PacketError::TooLong { len, max })
                if self.oversize == OversizePolicy::Skip && len != u64::MAX =>
            {
                return Ok(Decode::Skip {
                    len,
                    oversize: Some(Oversize {
                        len: Some(len),
                        max,
                    }),
                });
            }
            Err(e) => return Err(frame_error(e)),
        };
        let Some(packet) = buf.get(..total) else {
            return Ok(Decode::Incomplete { need: Some(total) });
        };
        match Packet::parse(packet, &self.limits) {
            Ok(Some((_, len))) => Ok(Decode::Frame {
                len,
                payload: 0..len,
            }),
            // peek_len said the whole packet is there.
            Ok(None) => Ok(Decode::Incomplete { need: Some(total) }),
            Err(e) => Err(frame_error(e)),
        }
    }

    fn max_frame_len(&self) -> usize {
        self.limits.max_packet_len
    }

    /// Checks that `payload` is exactly one well-formed packet within the
    /// limit (the rules [`decode`](Framing::decode) applies); the header is
    /// empty. Longer than the limit: [`EncodeError::PayloadTooLong`]; anything else
    /// that is not exactly one packet: [`EncodeError::Malformed`]
    /// ([`PacketFraming::parse_exact`] says why).
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        let max = self.limits.max_packet_len;
        if payload.len() > max {
            return Err(EncodeError::PayloadTooLong {
                len: payload.len(),
                max,
            });
        }
        // Within the limit, a length prefix declaring more than the limit
        // cannot describe exactly these bytes: malformed like any mismatch.
        match self.parse_exact(payload) {
            Ok(_) => Ok(FrameHeader::EMPTY),
            Err(_) => Err(EncodeError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testkit::{cuts, frames, outs_all_ways, run_all_ways, run_chunked, Out};
    use crate::packet::wire::{Field, EOF_BYTES, ERQ_BYTES};
    use crate::testutil::unhex;
    use crate::varint::VarintError;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// Every packet of WIRE.md's table, as hex.
    fn golden() -> Vec<Vec<u8>> {
        let mut long = unhex("814b822c04");
        long.extend(0u8..200);
        vec![
            unhex("08 02 02 01 68656c6c6f"),
            unhex("06 03 0e 02 616263"),
            unhex("05 02 03 05 01 78"),
            unhex("07 02 04 68656c6c6f"),
            unhex("07 02 3c 666c616773"),
            unhex("04 0c 83 7c 66"),
            unhex("1a 05 00 657863657074696f6e20647572696e672068616e646c6572"),
            long,
            EOF_BYTES.to_vec(),
            ERQ_BYTES.to_vec(),
            // Python's big fields (see wire.rs).
            unhex("0aa0808080800029076e6f"),
            unhex("140082808003a08080800081808080808080808000"),
        ]
    }

    #[test]
    fn golden_packets_whole_bytewise_and_split() {
        let packets = golden();
        let stream: Vec<u8> = packets.concat();
        let run = run_all_ways(&PacketFraming::new(), &stream);
        assert_eq!(frames(&run), packets);
        assert!(run.leftover.is_empty());
        // The 200-byte payload packet parses as the wire module says.
        let p = PacketFraming::new().parse_exact(&packets[7]).unwrap();
        assert_eq!((p.tag(), p.payload().len()), (300, 200));
    }

    #[test]
    fn golden_packets_in_random_splits_with_a_partial_tail() {
        let packets = golden();
        let mut stream: Vec<u8> = packets.concat();
        stream.extend_from_slice(&[0x08, 0x02, 0x02]);
        for seed in 0..50u64 {
            // A small deterministic generator: splits of 0..=17 bytes.
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let cuts: Vec<usize> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 18) as usize
                })
                .collect();
            let run = run_chunked(&mut PacketFraming::new(), &stream, &cuts);
            assert_eq!(frames(&run), packets, "seed {seed}");
            assert_eq!(run.leftover, [0x08, 0x02, 0x02]);
        }
    }

    #[test]
    fn incomplete_reports_the_total_once_the_prefix_is_read() {
        let mut f = PacketFraming::new();
        assert_eq!(f.decode(b"").unwrap(), Decode::Incomplete { need: None });
        assert_eq!(
            f.decode(&[0x81]).unwrap(),
            Decode::Incomplete { need: None }
        );
        assert_eq!(
            f.decode(&[0x81, 0x4b, 0x82]).unwrap(),
            Decode::Incomplete { need: Some(205) }
        );
    }

    #[test]
    fn limit_checked_on_the_prefix_counting_it() {
        let f = PacketFraming::new().with_max_packet_len(9);
        // 9 bytes in all: accepted.
        let ok = unhex("08 02 02 01 68656c6c6f");
        assert_eq!(frames(&run_all_ways(&f, &ok)), [ok]);
        // Body of 9: 10 bytes in all, refused on the prefix alone.
        assert_eq!(
            outs_all_ways(&f, &unhex("09 02 02 01 68656c6c6f21")),
            [Out::Error(FrameError::FrameTooLong { len: 10, max: 9 })]
        );
        let mut g = f;
        assert_eq!(
            g.decode(&[0x09]),
            Err(FrameError::FrameTooLong { len: 10, max: 9 })
        );
        // The default limit and a huge declared length.
        let mut d = PacketFraming::new();
        assert_eq!(d.max_frame_len(), 16 * 1024 * 1024);
        assert_eq!(
            d.decode(&[0x88, 0x80, 0x80, 0x00]),
            Err(FrameError::FrameTooLong {
                len: (1 << 24) + 4,
                max: 16 * 1024 * 1024
            })
        );
    }

    #[test]
    fn oversize_skip_drops_the_packet_and_carries_on() {
        let f = PacketFraming::new()
            .with_max_packet_len(6)
            .with_oversize(OversizePolicy::Skip);
        let mut input = unhex("08 02 02 01 68656c6c6f");
        input.extend_from_slice(&EOF_BYTES);
        let run = run_all_ways(&f, &input);
        assert_eq!(
            run.out,
            [
                Out::Skipped(Oversize {
                    len: Some(9),
                    max: 6
                }),
                Out::Frame(EOF_BYTES.to_vec())
            ]
        );
        // A size that does not fit a u64 cannot be skipped.
        let mut g = f;
        let max_prefix = [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            g.decode(&max_prefix),
            Err(FrameError::FrameTooLong { len: u64::MAX, .. })
        ));
    }

    #[test]
    fn malformed_packets_are_typed_errors_in_any_chunking() {
        let f = PacketFraming::new();
        // The body ends inside the rq_type field.
        assert_eq!(
            outs_all_ways(&f, &unhex("03 010200 02 02 02 ff")),
            [
                Out::Frame(unhex("03010200")),
                Out::Error(FrameError::Packet(PacketError::BodyTooShort {
                    field: Field::RqType,
                    body_len: 2
                }))
            ]
        );
        // A length prefix of too many octets.
        assert_eq!(
            outs_all_ways(&f, &[0x80; 12]),
            [Out::Error(FrameError::Packet(PacketError::Varint {
                field: Field::Length,
                error: VarintError::TooManyOctets { max: 10 }
            }))]
        );
        // Strict varints refuse a non-canonical tag the default accepts.
        let noncanonical = [0x05, 0x80, 0x05, 0x80, 0x04, 0x61];
        assert_eq!(
            frames(&run_all_ways(&f, &noncanonical)),
            [noncanonical.to_vec()]
        );
        let strict = f.with_varint_rules(VarintRules::STRICT);
        assert_eq!(
            outs_all_ways(&strict, &noncanonical),
            [Out::Error(FrameError::Packet(PacketError::Varint {
                field: Field::Tag,
                error: VarintError::NonCanonical
            }))]
        );
    }

    #[test]
    fn encode_accepts_exactly_one_packet() {
        let f = PacketFraming::new();
        for p in golden() {
            let mut out = vec![0u8; p.len()];
            assert_eq!(f.header(&p), Ok(FrameHeader::EMPTY));
            assert_eq!(f.encode(&p, &mut out), Ok(p.len()));
            assert_eq!(out, p);
            assert_eq!(f.encoded_len(&p), Ok(p.len()));
        }
        let hello = unhex("08 02 02 01 68656c6c6f");
        let mut out = [0u8; 32];
        // Too short, trailing bytes, empty, two packets, broken body.
        assert_eq!(f.encode(&hello[..8], &mut out), Err(EncodeError::Malformed));
        let mut extra = hello.clone();
        extra.push(0);
        assert_eq!(f.encode(&extra, &mut out), Err(EncodeError::Malformed));
        assert_eq!(f.encode(b"", &mut out), Err(EncodeError::Malformed));
        let two = [EOF_BYTES, ERQ_BYTES].concat();
        assert_eq!(f.encode(&two, &mut out), Err(EncodeError::Malformed));
        assert_eq!(
            f.encode(&[0x01, 0x82], &mut out),
            Err(EncodeError::Malformed)
        );
        // Over the limit, whatever the declared length says.
        let small = f.with_max_packet_len(8);
        assert_eq!(
            small.encode(&hello, &mut out),
            Err(EncodeError::PayloadTooLong { len: 9, max: 8 })
        );
        // A short payload declaring more than the limit is not a packet.
        assert_eq!(small.header(&[0x7f]), Err(EncodeError::Malformed));
        assert_eq!(
            f.encode(&hello, &mut out[..4]),
            Err(EncodeError::BufferTooSmall { required: 9 })
        );
    }

    #[test]
    fn parse_exact_says_why() {
        let f = PacketFraming::new();
        let hello = unhex("08 02 02 01 68656c6c6f");
        assert_eq!(
            f.parse_exact(&hello[..5]),
            Err(PacketCheck::Truncated {
                need: Some(9),
                actual: 5
            })
        );
        assert_eq!(
            f.parse_exact(&[0x81]),
            Err(PacketCheck::Truncated {
                need: None,
                actual: 1
            })
        );
        let two = [EOF_BYTES, ERQ_BYTES].concat();
        assert_eq!(
            f.parse_exact(&two),
            Err(PacketCheck::Trailing { len: 4, actual: 8 })
        );
        assert_eq!(
            f.with_max_packet_len(4).parse_exact(&hello),
            Err(PacketCheck::Invalid(FrameError::FrameTooLong {
                len: 9,
                max: 4
            }))
        );
        let p = f.parse_exact(&hello).unwrap();
        assert_eq!(p.payload(), b"hello");
        assert_eq!(
            std::format!("{}", f.parse_exact(&two).unwrap_err()),
            "8 bytes hold a packet of 4 and more bytes"
        );
    }

    fn arb_packet() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![Just(0u64), any::<u64>()],
            any::<u64>(),
            0..=crate::packet::wire::MAX_PFLAGS,
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(channel, tag, pflags, rq, payload)| {
                let p = Packet::from_parts(channel, tag, pflags, rq, &payload).unwrap();
                let mut out = vec![0; p.encoded_len()];
                p.encode(&mut out).unwrap();
                out
            })
    }

    proptest! {
        #[test]
        fn encoded_packets_come_back_in_any_chunking(
            packets in proptest::collection::vec(arb_packet(), 0..8),
            c in cuts(24),
        ) {
            let f = PacketFraming::new();
            let mut stream = Vec::new();
            for p in &packets {
                let mut out = vec![0; f.encoded_len(p).unwrap()];
                prop_assert_eq!(f.encode(p, &mut out), Ok(p.len()));
                stream.extend_from_slice(&out);
            }
            let run = run_chunked(&mut f.clone(), &stream, &c);
            prop_assert_eq!(frames(&run), packets.clone());
            let bytewise = run_chunked(&mut f.clone(), &stream, &vec![1; stream.len()]);
            prop_assert_eq!(frames(&bytewise), packets);
        }

        #[test]
        fn decode_agrees_with_the_wire_parser(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
            c in cuts(16),
        ) {
            let f = PacketFraming::new().with_max_packet_len(48);
            // Reference: the wire parser on the whole input, packet by packet.
            let mut expected = Vec::new();
            let mut pos = 0;
            loop {
                match Packet::parse(&bytes[pos..], &f.limits()) {
                    Ok(Some((_, n))) => {
                        expected.push(Out::Frame(bytes[pos..pos + n].to_vec()));
                        pos += n;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        expected.push(Out::Error(frame_error(e)));
                        break;
                    }
                }
            }
            let run = run_chunked(&mut f.clone(), &bytes, &c);
            prop_assert_eq!(&run.out, &expected);
            // What decodes also encodes, unchanged.
            for o in &run.out {
                if let Out::Frame(p) = o {
                    prop_assert_eq!(f.header(p), Ok(FrameHeader::EMPTY));
                }
            }
        }
    }
}
