//! Length-prefixed frames: a length field in front of every payload (socktools'
//! `struct.pack('>I', len(data)) + data`, the socket HOWTO's "prefix every
//! message with its length", cs.packetstream's BSUInt length).
//!
//! The length field is 1 to 8 bytes in either byte order, or a BSUInt varint
//! ([`crate::varint`]). Like tokio-util's `LengthDelimitedCodec` it can sit
//! behind `length_field_offset` bytes of other header, be adjusted by a signed
//! `length_adjustment`, and count the header itself (`length_includes_header`).
//!
//! Every length is computed with checked arithmetic, and the real frame size
//! (header included, after adjustment) is checked against the limit as soon as
//! the length field is readable, before any of the body is awaited: a 4-byte
//! header of `ff ff ff ff` is refused after those 4 bytes.

use super::{Decode, EncodeError, FrameError, FrameHeader, Framing, Oversize, OversizePolicy};
use crate::varint::{self, VarintRules};

/// How the length is written in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LengthField {
    /// An unsigned integer of `bytes` (1..=8) bytes.
    Fixed {
        /// Width of the field in bytes, 1..=8.
        bytes: u8,
        /// Most significant byte first (network order) when set.
        big_endian: bool,
    },
    /// A BSUInt (big-endian base-128 varint, cs.binary) read with these rules.
    Varint(VarintRules),
}

impl LengthField {
    /// One byte.
    pub const U8: LengthField = LengthField::fixed(1, true);
    /// `u16`, big-endian.
    pub const U16_BE: LengthField = LengthField::fixed(2, true);
    /// `u16`, little-endian.
    pub const U16_LE: LengthField = LengthField::fixed(2, false);
    /// `u32`, big-endian: socktools' `struct.pack('>I', ...)`. The default.
    pub const U32_BE: LengthField = LengthField::fixed(4, true);
    /// `u32`, little-endian.
    pub const U32_LE: LengthField = LengthField::fixed(4, false);
    /// `u64`, big-endian.
    pub const U64_BE: LengthField = LengthField::fixed(8, true);
    /// `u64`, little-endian.
    pub const U64_LE: LengthField = LengthField::fixed(8, false);
    /// A BSUInt with the default [`VarintRules`] (non-canonical forms
    /// accepted, at most 10 octets), as cs.packetstream writes it.
    pub const VARINT: LengthField = LengthField::Varint(VarintRules {
        require_canonical: false,
        max_octets: varint::MAX_OCTETS,
    });

    /// A fixed-width field of `bytes` bytes. Panics unless `bytes` is 1..=8
    /// (a configuration bug).
    pub const fn fixed(bytes: u8, big_endian: bool) -> LengthField {
        assert!(
            bytes >= 1 && bytes <= 8,
            "a fixed length field is 1 to 8 bytes"
        );
        LengthField::Fixed { bytes, big_endian }
    }

    /// The largest value the field can hold.
    pub const fn max_value(&self) -> u64 {
        match *self {
            LengthField::Fixed { bytes, .. } => {
                if bytes >= 8 {
                    u64::MAX
                } else {
                    (1u64 << (8 * bytes as u32)) - 1
                }
            }
            LengthField::Varint(_) => u64::MAX,
        }
    }
}

impl Default for LengthField {
    fn default() -> Self {
        LengthField::U32_BE
    }
}

/// Length-prefixed frames.
///
/// The default is socktools' framing: a `u32` big-endian length of the payload,
/// frames up to [`LengthPrefixed::DEFAULT_MAX_FRAME_LEN`] (8 MiB, header
/// included), over-long frames fail the stream.
///
/// The frame size is computed from the length field's value `raw` as:
///
/// * `length_includes_header == false` (default):
///   `header_len + raw + length_adjustment`, where `header_len` is
///   `length_field_offset` plus the field's own width;
/// * `length_includes_header == true`: `raw + length_adjustment`, which must
///   be at least `header_len`.
///
/// The payload is every byte after the header (the offset bytes and the field
/// are not part of it). A negative or overflowing result is
/// [`FrameError::InvalidLength`]; a size over the limit is
/// [`FrameError::FrameTooLong`], or skipped under [`OversizePolicy::Skip`].
///
/// ```
/// use framewire::framing::{Decode, Framing, LengthPrefixed};
/// let mut f = LengthPrefixed::new();
/// assert_eq!(f.decode(b"\0\0\0\x02h").unwrap(), Decode::Incomplete { need: Some(6) });
/// assert_eq!(
///     f.decode(b"\0\0\0\x02hi!").unwrap(),
///     Decode::Frame { len: 6, payload: 4..6 }
/// );
/// let mut out = [0u8; 8];
/// let n = f.encode(b"hi", &mut out).unwrap();
/// assert_eq!(&out[..n], b"\0\0\0\x02hi");
/// ```
///
/// A `u16` little-endian length that counts itself:
///
/// ```
/// use framewire::framing::{Decode, Framing, LengthField, LengthPrefixed};
/// let mut f = LengthPrefixed::new()
///     .with_length_field(LengthField::U16_LE)
///     .with_includes_header(true);
/// assert_eq!(f.decode(b"\x04\x00hi").unwrap(), Decode::Frame { len: 4, payload: 2..4 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LengthPrefixed {
    field: LengthField,
    offset: usize,
    adjustment: i64,
    includes_header: bool,
    max_frame_len: usize,
    oversize: OversizePolicy,
}

impl Default for LengthPrefixed {
    fn default() -> Self {
        LengthPrefixed::new()
    }
}

impl LengthPrefixed {
    /// The default limit on a frame's size, header included: 8 MiB (as
    /// tokio-util's `LengthDelimitedCodec`).
    pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

    /// socktools' framing: `u32` big-endian payload length, no offset or
    /// adjustment, 8 MiB limit, [`OversizePolicy::Fail`].
    pub const fn new() -> Self {
        LengthPrefixed {
            field: LengthField::U32_BE,
            offset: 0,
            adjustment: 0,
            includes_header: false,
            max_frame_len: Self::DEFAULT_MAX_FRAME_LEN,
            oversize: OversizePolicy::Fail,
        }
    }

    /// A BSUInt length of the payload (cs.packetstream's packet framing),
    /// otherwise the defaults of [`LengthPrefixed::new`].
    pub const fn varint() -> Self {
        LengthPrefixed::new().with_length_field(LengthField::VARINT)
    }

    /// Sets how the length field is written. Panics on a
    /// [`LengthField::Fixed`] width outside 1..=8 (a configuration bug).
    #[must_use]
    pub const fn with_length_field(mut self, field: LengthField) -> Self {
        if let LengthField::Fixed { bytes, .. } = field {
            assert!(
                bytes >= 1 && bytes <= 8,
                "a fixed length field is 1 to 8 bytes"
            );
        }
        self.field = field;
        self
    }

    /// Sets the value added to the length field to get the number of bytes
    /// after the header (or the whole frame size, with
    /// [`with_includes_header`](Self::with_includes_header)). Default 0.
    #[must_use]
    pub const fn with_adjustment(mut self, adjustment: i64) -> Self {
        self.adjustment = adjustment;
        self
    }

    /// Sets how many header bytes come before the length field. They are
    /// part of the header, not of the payload. Decode only: a framing with an
    /// offset cannot encode ([`EncodeError::Unsupported`]). Default 0.
    #[must_use]
    pub const fn with_offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// Sets whether the length field counts the header (offset bytes and the
    /// field itself) as well as the payload. Default `false`.
    #[must_use]
    pub const fn with_includes_header(mut self, includes_header: bool) -> Self {
        self.includes_header = includes_header;
        self
    }

    /// Sets the largest frame accepted or sent, header included. Default
    /// [`LengthPrefixed::DEFAULT_MAX_FRAME_LEN`].
    #[must_use]
    pub const fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Sets what happens to a received frame over the limit. Default
    /// [`OversizePolicy::Fail`].
    #[must_use]
    pub const fn with_oversize(mut self, policy: OversizePolicy) -> Self {
        self.oversize = policy;
        self
    }

    /// The length field.
    pub const fn length_field(&self) -> LengthField {
        self.field
    }

    /// The length adjustment.
    pub const fn adjustment(&self) -> i64 {
        self.adjustment
    }

    /// Header bytes before the length field.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// Whether the length field counts the header.
    pub const fn includes_header(&self) -> bool {
        self.includes_header
    }

    /// The over-long frame policy.
    pub const fn oversize(&self) -> OversizePolicy {
        self.oversize
    }

    /// Reads the length field: `Ok(Ok((raw, header_len)))`, or
    /// `Ok(Err(need))` when it is not all there yet.
    #[inline]
    fn read_field(&self, buf: &[u8]) -> Result<Result<(u64, usize), Option<usize>>, FrameError> {
        match self.field {
            LengthField::Fixed { bytes, big_endian } => {
                let header_len = self.offset.saturating_add(usize::from(bytes));
                let Some(field) = buf.get(self.offset..header_len) else {
                    return Ok(Err(Some(header_len)));
                };
                let raw = match (field, big_endian) {
                    // The common widths without a loop.
                    (&[a, b, c, d], true) => u64::from(u32::from_be_bytes([a, b, c, d])),
                    (&[a, b, c, d], false) => u64::from(u32::from_le_bytes([a, b, c, d])),
                    (&[a, b], true) => u64::from(u16::from_be_bytes([a, b])),
                    (&[a, b], false) => u64::from(u16::from_le_bytes([a, b])),
                    (_, true) => field.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)),
                    (_, false) => field
                        .iter()
                        .rev()
                        .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
                };
                Ok(Ok((raw, header_len)))
            }
            LengthField::Varint(rules) => {
                // Not one octet of the varint yet: at least the next byte is
                // needed (the same answer before and after the offset bytes
                // are all in, so `need` does not depend on the chunking).
                let Some(rest) = buf.get(self.offset..).filter(|r| !r.is_empty()) else {
                    return Ok(Err(Some(self.offset.saturating_add(1))));
                };
                match varint::decode(rest, rules)? {
                    Some((raw, octets)) => Ok(Ok((raw, self.offset + octets))),
                    None => Ok(Err(None)),
                }
            }
        }
    }

    /// The whole frame's size for a length field value `raw` in a header of
    /// `header_len` bytes.
    #[inline]
    fn frame_len(&self, raw: u64, header_len: usize) -> Result<u64, FrameError> {
        let invalid = FrameError::InvalidLength {
            raw,
            adjustment: self.adjustment,
        };
        let adjusted = if self.adjustment >= 0 {
            raw.checked_add(self.adjustment.unsigned_abs())
        } else {
            raw.checked_sub(self.adjustment.unsigned_abs())
        }
        .ok_or(invalid)?;
        let header_len = header_len as u64;
        if self.includes_header {
            if adjusted < header_len {
                Err(invalid)
            } else {
                Ok(adjusted)
            }
        } else {
            header_len.checked_add(adjusted).ok_or(invalid)
        }
    }

    /// The length field value for a payload of `payload_len` bytes behind a
    /// header of `header_len` bytes (may be negative or too big: exact).
    fn field_value(&self, payload_len: usize, header_len: usize) -> i128 {
        let counted = if self.includes_header {
            payload_len as i128 + header_len as i128
        } else {
            payload_len as i128
        };
        counted - i128::from(self.adjustment)
    }

    /// The header length and field value for a payload, if representable.
    fn encode_field(&self, payload_len: usize) -> Option<(usize, u64)> {
        match self.field {
            LengthField::Fixed { bytes, .. } => {
                let h = usize::from(bytes);
                let v = u64::try_from(self.field_value(payload_len, h)).ok()?;
                (v <= self.field.max_value()).then_some((h, v))
            }
            LengthField::Varint(rules) => {
                // With the header counted, the value depends on its own
                // encoded length: take the smallest consistent width (one
                // always exists in 1..=10, see the tests). A value longer
                // than the rules' `max_octets` is one this framing would
                // refuse to read: not encodable.
                (1..=varint::MAX_OCTETS).find_map(|h| {
                    let v = u64::try_from(self.field_value(payload_len, h)).ok()?;
                    let octets = varint::encoded_len(v);
                    let fits = if self.includes_header {
                        octets == h
                    } else {
                        true
                    };
                    (fits && octets <= rules.max_octets).then_some((octets, v))
                })
            }
        }
    }

    /// Whether a payload of `payload_len` bytes can be sent.
    fn encodable(&self, payload_len: usize) -> bool {
        self.encode_field(payload_len).is_some_and(|(h, _)| {
            h.checked_add(payload_len)
                .is_some_and(|n| n <= self.max_frame_len)
        })
    }

    /// The longest payload [`Framing::header`] accepts (0 if even an empty
    /// payload cannot be sent).
    pub fn max_payload_len(&self) -> usize {
        let widths: &[usize] = match self.field {
            LengthField::Fixed { bytes, .. } => &[bytes as usize],
            LengthField::Varint(_) => &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        };
        let mut best = 0;
        for &h in widths {
            // The biggest payload the limit allows with this header width,
            // lowered to what the field can represent.
            let by_limit = self.max_frame_len.checked_sub(h);
            let field_max = match self.field {
                LengthField::Fixed { .. } => self.field.max_value(),
                // The largest value `h` octets hold, if the rules allow them.
                LengthField::Varint(rules) if h <= rules.max_octets => {
                    u64::try_from((1u128 << (7 * h)) - 1).unwrap_or(u64::MAX)
                }
                LengthField::Varint(_) => continue,
            };
            let by_field = i128::from(field_max) + i128::from(self.adjustment)
                - if self.includes_header { h as i128 } else { 0 };
            let Some(by_limit) = by_limit else { continue };
            let candidate = if by_field < 0 {
                continue;
            } else {
                usize::try_from(by_field).map_or(by_limit, |f| f.min(by_limit))
            };
            if self.encodable(candidate) {
                best = best.max(candidate);
            }
        }
        best
    }

    /// The shortest payload [`Framing::header`] accepts (non-zero only with a
    /// positive adjustment: the field cannot go below 0).
    pub fn min_payload_len(&self) -> usize {
        let header = match self.field {
            _ if !self.includes_header => 0,
            LengthField::Fixed { bytes, .. } => i64::from(bytes),
            LengthField::Varint(_) => 1,
        };
        usize::try_from(self.adjustment.saturating_sub(header)).unwrap_or(0)
    }
}

impl Framing for LengthPrefixed {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        let (raw, header_len) = match self.read_field(buf)? {
            Ok(field) => field,
            Err(need) => return Ok(Decode::Incomplete { need }),
        };
        let len = self.frame_len(raw, header_len)?;
        if len > self.max_frame_len as u64 {
            let max = self.max_frame_len;
            return match self.oversize {
                OversizePolicy::Fail => Err(FrameError::FrameTooLong { len, max }),
                OversizePolicy::Skip => Ok(Decode::Skip {
                    len,
                    oversize: Some(Oversize {
                        len: Some(len),
                        max,
                    }),
                }),
            };
        }
        // len <= max_frame_len, a usize.
        let len = len as usize;
        if buf.len() < len {
            Ok(Decode::Incomplete { need: Some(len) })
        } else {
            Ok(Decode::Frame {
                len,
                payload: header_len..len,
            })
        }
    }

    #[inline]
    fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        if self.offset > 0 {
            return Err(EncodeError::Unsupported);
        }
        let len = payload.len();
        let min = self.min_payload_len();
        if len < min {
            return Err(EncodeError::PayloadTooShort { len, min });
        }
        let field = self
            .encode_field(len)
            .filter(|&(h, _)| h.checked_add(len).is_some_and(|n| n <= self.max_frame_len));
        let Some((header_len, value)) = field else {
            return Err(EncodeError::PayloadTooLong {
                len,
                max: self.max_payload_len(),
            });
        };
        match self.field {
            LengthField::Fixed { big_endian, .. } => {
                let bytes = if big_endian {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                let field = if big_endian {
                    &bytes[8 - header_len..]
                } else {
                    &bytes[..header_len]
                };
                Ok(FrameHeader::new(field))
            }
            LengthField::Varint(_) => {
                let (bytes, n) = varint::encode_array(value);
                Ok(FrameHeader::new(&bytes[..n]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testkit::{
        cuts, frames, outs_all_ways, run_all_ways, run_chunked, settled, Out, Run,
    };
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    use crate::testutil::unhex;

    fn encode_vec(f: &LengthPrefixed, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0xa5; f.encoded_len(payload)?];
        let n = f.encode(payload, &mut out)?;
        assert_eq!(n, out.len());
        Ok(out)
    }

    /// WIRE.md §3: socktools `[1, {"text": "hi", "n": [1, 2.5, null]}]`.
    const SOCKTOOLS: &str =
        "00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d";
    /// WIRE.md §3: `["chat", "hé"]`.
    const SOCKTOOLS_CHAT: &str = "00000013 5b2263686174222c2022685c7530306539225d";

    #[test]
    fn socktools_golden_frames() {
        let f = LengthPrefixed::new();
        let one = unhex(SOCKTOOLS);
        let two = unhex(SOCKTOOLS_CHAT);
        let mut input = one.clone();
        input.extend_from_slice(&two);
        input.extend_from_slice(b"\0\0"); // start of a third header
        let run = run_all_ways(&f, &input);
        assert_eq!(
            frames(&run),
            [
                br#"[1, {"text": "hi", "n": [1, 2.5, null]}]"#.to_vec(),
                br#"["chat", "h\u00e9"]"#.to_vec()
            ]
        );
        assert_eq!(run.leftover, b"\0\0");
        assert_eq!(encode_vec(&f, &one[4..]).unwrap(), one);
        assert_eq!(encode_vec(&f, &two[4..]).unwrap(), two);
    }

    #[test]
    fn huge_u32_header_fails_after_four_bytes() {
        let mut f = LengthPrefixed::new();
        let err = FrameError::FrameTooLong {
            len: 0xffff_ffff + 4,
            max: LengthPrefixed::DEFAULT_MAX_FRAME_LEN,
        };
        assert_eq!(
            f.decode(b"\xff\xff\xff").unwrap(),
            Decode::Incomplete { need: Some(4) }
        );
        assert_eq!(f.decode(b"\xff\xff\xff\xff"), Err(err));
        assert_eq!(outs_all_ways(&f, b"\xff\xff\xff\xffabc"), [Out::Error(err)]);
    }

    #[test]
    fn limit_counts_the_header() {
        // 8 bytes of payload + 4 of header = 12.
        let f = LengthPrefixed::new().with_max_frame_len(12);
        assert_eq!(
            outs_all_ways(&f, b"\0\0\0\x0812345678\0\0\0\x09"),
            [
                Out::Frame(b"12345678".to_vec()),
                Out::Error(FrameError::FrameTooLong { len: 13, max: 12 })
            ]
        );
        assert_eq!(f.max_payload_len(), 8);
        assert!(encode_vec(&f, b"12345678").is_ok());
        assert_eq!(
            encode_vec(&f, b"123456789"),
            Err(EncodeError::PayloadTooLong { len: 9, max: 8 })
        );
    }

    #[test]
    fn skip_policy_skips_oversize_frames_and_carries_on() {
        let f = LengthPrefixed::new()
            .with_max_frame_len(8)
            .with_oversize(OversizePolicy::Skip);
        let run = run_all_ways(&f, b"\0\0\0\x01a\0\0\0\x0aABCDEFGHIJ\0\0\0\x02bc");
        assert_eq!(
            run.out,
            [
                Out::Frame(b"a".to_vec()),
                Out::Skipped(Oversize {
                    len: Some(14),
                    max: 8
                }),
                Out::Frame(b"bc".to_vec()),
            ]
        );
        // The skip is decided from the header alone, before the body.
        let mut f = f;
        assert_eq!(
            f.decode(b"\0\0\0\x0a").unwrap(),
            Decode::Skip {
                len: 14,
                oversize: Some(Oversize {
                    len: Some(14),
                    max: 8
                })
            }
        );
    }

    #[test]
    fn u16_little_endian() {
        let f = LengthPrefixed::new().with_length_field(LengthField::U16_LE);
        let mut input = vec![0x03, 0x00];
        input.extend_from_slice(b"abc");
        input.extend_from_slice(&[0x00, 0x01]);
        input.extend_from_slice(&[b'x'; 256]);
        input.push(0x07);
        let run = run_all_ways(&f, &input);
        assert_eq!(frames(&run), [b"abc".to_vec(), vec![b'x'; 256]]);
        assert_eq!(run.leftover, [0x07]);
        assert_eq!(encode_vec(&f, &[b'x'; 256]).unwrap()[..2], [0x00, 0x01]);
        assert_eq!(
            encode_vec(&f, &vec![0; 65536]),
            Err(EncodeError::PayloadTooLong {
                len: 65536,
                max: 65535
            })
        );
    }

    #[test]
    fn one_byte_field_bounds_the_payload() {
        let f = LengthPrefixed::new().with_length_field(LengthField::U8);
        let run = run_all_ways(&f, b"\x02hi\x00\x01!");
        assert_eq!(frames(&run), [b"hi".to_vec(), b"".to_vec(), b"!".to_vec()]);
        assert_eq!(f.max_payload_len(), 255);
        assert_eq!(encode_vec(&f, &[7; 255]).unwrap()[0], 255);
        assert_eq!(
            encode_vec(&f, &[7; 256]),
            Err(EncodeError::PayloadTooLong { len: 256, max: 255 })
        );
    }

    #[test]
    fn eight_byte_fields_both_orders() {
        let be = LengthPrefixed::new().with_length_field(LengthField::U64_BE);
        let le = LengthPrefixed::new().with_length_field(LengthField::U64_LE);
        assert_eq!(encode_vec(&be, b"xyz").unwrap(), b"\0\0\0\0\0\0\0\x03xyz");
        assert_eq!(encode_vec(&le, b"xyz").unwrap(), b"\x03\0\0\0\0\0\0\0xyz");
        let run = run_all_ways(&le, b"\x03\0\0\0\0\0\0\0xyz\x01\0\0");
        assert_eq!(frames(&run), [b"xyz".to_vec()]);
        assert_eq!(run.leftover, b"\x01\0\0");
        // u64::MAX + 8 bytes of header overflows: an impossible size.
        let mut f = be;
        assert_eq!(
            f.decode(&[0xff; 8]),
            Err(FrameError::InvalidLength {
                raw: u64::MAX,
                adjustment: 0
            })
        );
        assert_eq!(
            f.decode(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::FrameTooLong {
                len: (1 << 63) + 7,
                max: LengthPrefixed::DEFAULT_MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn three_byte_field() {
        let f = LengthPrefixed::new().with_length_field(LengthField::fixed(3, true));
        assert_eq!(encode_vec(&f, b"ab").unwrap(), b"\0\0\x02ab");
        let run = run_all_ways(&f, b"\0\0\x02ab\0\x01");
        assert_eq!(frames(&run), [b"ab".to_vec()]);
    }

    #[test]
    fn varint_lengths() {
        let f = LengthPrefixed::varint();
        // WIRE.md §2: a 203-byte packet body has length `81 4b`.
        let body: Vec<u8> = (0..203u32).map(|i| i as u8).collect();
        let framed = encode_vec(&f, &body).unwrap();
        assert_eq!(framed[..2], [0x81, 0x4b]);
        // WIRE.md §2: the EOF packet `03 00 02 00`, then an ERQ.
        let mut input = unhex("03000200 03010200");
        input.extend_from_slice(&framed);
        let run = run_all_ways(&f, &input);
        assert_eq!(
            frames(&run),
            [vec![0x00, 0x02, 0x00], vec![0x01, 0x02, 0x00], body]
        );
        // Non-canonical lengths are accepted by default, refused when strict.
        let run = run_all_ways(&f, b"\x80\x02hi");
        assert_eq!(frames(&run), [b"hi".to_vec()]);
        let strict =
            LengthPrefixed::new().with_length_field(LengthField::Varint(VarintRules::STRICT));
        assert_eq!(
            outs_all_ways(&strict, b"\x80\x02hi"),
            [Out::Error(FrameError::Varint(
                crate::varint::VarintError::NonCanonical
            ))]
        );
        // An endless varint is refused once it passes max_octets.
        assert_eq!(
            outs_all_ways(&f, &[0x80; 20]),
            [Out::Error(FrameError::Varint(
                crate::varint::VarintError::TooManyOctets { max: 10 }
            ))]
        );
        // A huge varint fails as soon as it ends.
        let mut g = f;
        assert_eq!(
            g.decode(&[0x81, 0x80, 0x80, 0x80, 0x00]),
            Err(FrameError::FrameTooLong {
                len: (1 << 28) + 5,
                max: LengthPrefixed::DEFAULT_MAX_FRAME_LEN
            })
        );
        assert_eq!(
            g.decode(&[0x81]).unwrap(),
            Decode::Incomplete { need: None }
        );
    }

    #[test]
    fn varint_limit_and_max_payload() {
        // 130 bytes: a 2-octet header leaves 128, and 128 needs 2 octets.
        let f = LengthPrefixed::varint().with_max_frame_len(130);
        assert_eq!(f.max_payload_len(), 128);
        assert!(encode_vec(&f, &[0; 128]).is_ok());
        assert_eq!(
            encode_vec(&f, &[0; 129]),
            Err(EncodeError::PayloadTooLong { len: 129, max: 128 })
        );
        // 129 bytes: 127 fits with 1 octet (128 total); 128 would need 130.
        let f = LengthPrefixed::varint().with_max_frame_len(129);
        assert_eq!(f.max_payload_len(), 127);
    }

    #[test]
    fn varint_behind_an_offset_needs_its_first_octet() {
        // Found by fuzzing (framing_length): with exactly the offset bytes
        // buffered the need was unknown, with fewer it was offset + 1, so a
        // stream's FrameExceedsBuffer { need } depended on the chunking.
        let mut f = LengthPrefixed::varint().with_offset(4);
        for n in 0..=4 {
            assert_eq!(
                f.decode(&[0u8; 4][..n]).unwrap(),
                Decode::Incomplete { need: Some(5) },
                "{n} bytes"
            );
        }
        assert_eq!(
            f.decode(&[0, 0, 0, 0, 0x81]).unwrap(),
            Decode::Incomplete { need: None }
        );
    }

    #[test]
    fn varint_encoding_stays_within_max_octets() {
        // Found by fuzzing (framing_length): a value needing more octets
        // than the rules allow was encoded, and the same framing then
        // refused to read it back.
        let rules = VarintRules {
            require_canonical: false,
            max_octets: 1,
        };
        let f = LengthPrefixed::new()
            .with_length_field(LengthField::Varint(rules))
            .with_adjustment(-(1 << 40));
        assert_eq!(
            encode_vec(&f, b""),
            Err(EncodeError::PayloadTooLong { len: 0, max: 0 })
        );
        // One octet holds 0..=127: payloads up to 127 bytes, all readable.
        let f = LengthPrefixed::new()
            .with_length_field(LengthField::Varint(rules))
            .with_max_frame_len(600);
        assert_eq!(f.max_payload_len(), 127);
        let frame = encode_vec(&f, &[7; 127]).unwrap();
        assert_eq!(frames(&run_all_ways(&f, &frame)), [vec![7; 127]]);
        assert_eq!(
            encode_vec(&f, &[7; 128]),
            Err(EncodeError::PayloadTooLong { len: 128, max: 127 })
        );
    }

    #[test]
    fn varint_including_header_finds_its_own_width() {
        let f = LengthPrefixed::varint().with_includes_header(true);
        for len in [0usize, 1, 125, 126, 127, 128, 16381, 16382, 16383, 20000] {
            let payload = vec![0x5a; len];
            let framed = encode_vec(&f, &payload).unwrap();
            let (value, octets) = varint::decode(&framed, VarintRules::STRICT)
                .unwrap()
                .unwrap();
            assert_eq!(value as usize, framed.len(), "payload {len}");
            assert_eq!(octets + len, framed.len());
            assert_eq!(
                frames(&run_chunked(&mut f.clone(), &framed, &[])),
                [payload]
            );
        }
    }

    #[test]
    fn adjustment_and_includes_header() {
        // tokio-util style: the field counts the whole frame, expressed as a
        // negative adjustment...
        let by_adjustment = LengthPrefixed::new()
            .with_length_field(LengthField::U16_BE)
            .with_adjustment(-2);
        // ...or with includes_header.
        let by_flag = LengthPrefixed::new()
            .with_length_field(LengthField::U16_BE)
            .with_includes_header(true);
        for f in [by_adjustment, by_flag] {
            let run = run_all_ways(&f, b"\x00\x05abc\x00\x02\x00\x03");
            assert_eq!(frames(&run), [b"abc".to_vec(), b"".to_vec()]);
            assert_eq!(run.leftover, b"\x00\x03");
            assert_eq!(encode_vec(&f, b"abc").unwrap(), b"\x00\x05abc");
            // A length smaller than the header it is in.
            assert_eq!(
                outs_all_ways(&f, b"\x00\x01"),
                [Out::Error(FrameError::InvalidLength {
                    raw: 1,
                    adjustment: f.adjustment()
                })]
            );
        }
        // A positive adjustment: 2 bytes (say a checksum) follow the counted body.
        let f = LengthPrefixed::new()
            .with_length_field(LengthField::U8)
            .with_adjustment(2);
        let run = run_all_ways(&f, b"\x01aCC\x00DD");
        assert_eq!(frames(&run), [b"aCC".to_vec(), b"DD".to_vec()]);
        assert_eq!(encode_vec(&f, b"aCC").unwrap(), b"\x01aCC");
        assert_eq!(
            encode_vec(&f, b"C"),
            Err(EncodeError::PayloadTooShort { len: 1, min: 2 })
        );
        assert_eq!(f.max_payload_len(), 257);
        assert!(encode_vec(&f, &[0; 257]).is_ok());
        // Both: the field counts the header, plus 1 trailing byte not counted.
        let f = LengthPrefixed::new()
            .with_length_field(LengthField::U8)
            .with_includes_header(true)
            .with_adjustment(1);
        let run = run_all_ways(&f, b"\x03ab!");
        assert_eq!(frames(&run), [b"ab!".to_vec()]);
        assert_eq!(encode_vec(&f, b"ab!").unwrap(), b"\x03ab!");
        assert_eq!(f.min_payload_len(), 0);
    }

    #[test]
    fn adjustment_overflow_and_underflow_are_invalid() {
        let mut f = LengthPrefixed::new()
            .with_length_field(LengthField::U64_BE)
            .with_adjustment(i64::MAX);
        assert_eq!(
            f.decode(&[0xff; 8]),
            Err(FrameError::InvalidLength {
                raw: u64::MAX,
                adjustment: i64::MAX
            })
        );
        let mut f = LengthPrefixed::new().with_adjustment(-10);
        assert_eq!(
            f.decode(b"\0\0\0\x09"),
            Err(FrameError::InvalidLength {
                raw: 9,
                adjustment: -10
            })
        );
        assert_eq!(
            f.decode(b"\0\0\0\x0a").unwrap(),
            Decode::Frame {
                len: 4,
                payload: 4..4
            }
        );
        assert_eq!(
            LengthPrefixed::new()
                .with_adjustment(i64::MIN)
                .min_payload_len(),
            0
        );
        // Nothing is sendable when the field cannot reach the adjustment.
        let f = LengthPrefixed::new()
            .with_length_field(LengthField::U8)
            .with_adjustment(-300);
        assert_eq!(f.max_payload_len(), 0);
        assert_eq!(
            encode_vec(&f, b"x"),
            Err(EncodeError::PayloadTooLong { len: 1, max: 0 })
        );
    }

    #[test]
    fn offset_header_bytes_are_skipped_and_cannot_encode() {
        // 2 bytes of magic, then a u16 BE length counting the whole frame.
        let f = LengthPrefixed::new()
            .with_offset(2)
            .with_length_field(LengthField::U16_BE)
            .with_includes_header(true);
        let run = run_all_ways(&f, b"MG\x00\x06hiMG\x00\x04MG");
        assert_eq!(frames(&run), [b"hi".to_vec(), b"".to_vec()]);
        assert_eq!(run.leftover, b"MG");
        let mut g = f;
        assert_eq!(
            g.decode(b"MG\x00").unwrap(),
            Decode::Incomplete { need: Some(4) }
        );
        assert_eq!(f.header(b"hi"), Err(EncodeError::Unsupported));
        // Varint after an offset.
        let f = LengthPrefixed::varint().with_offset(1);
        let run = run_all_ways(&f, b"T\x02hiT\x81");
        assert_eq!(frames(&run), [b"hi".to_vec()]);
        let mut g = f;
        assert_eq!(g.decode(b"").unwrap(), Decode::Incomplete { need: Some(2) });
    }

    #[test]
    fn encode_reports_buffer_too_small() {
        let f = LengthPrefixed::new();
        let mut out = [0u8; 5];
        assert_eq!(
            f.encode(b"ab", &mut out),
            Err(EncodeError::BufferTooSmall { required: 6 })
        );
    }

    #[test]
    #[should_panic(expected = "1 to 8 bytes")]
    fn nine_byte_field_is_a_config_bug() {
        let _ = LengthPrefixed::new().with_length_field(LengthField::Fixed {
            bytes: 9,
            big_endian: true,
        });
    }

    /// The obvious decoder: whole input, exact integer arithmetic.
    fn reference(f: &LengthPrefixed, input: &[u8]) -> Run {
        let mut out = Vec::new();
        let mut pos = 0usize;
        loop {
            let rest = &input[pos..];
            let Some(after_offset) = rest.get(f.offset()..) else {
                break;
            };
            let (raw, width) = match f.length_field() {
                LengthField::Fixed { bytes, big_endian } => {
                    let w = usize::from(bytes);
                    let Some(field) = after_offset.get(..w) else {
                        break;
                    };
                    let mut b = [0u8; 16];
                    if big_endian {
                        b[16 - w..].copy_from_slice(field);
                    } else {
                        for (i, &x) in field.iter().enumerate() {
                            b[15 - i] = x;
                        }
                    }
                    (u128::from_be_bytes(b) as u64, w)
                }
                LengthField::Varint(rules) => match varint::decode(after_offset, rules) {
                    Ok(Some(v)) => v,
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Out::Error(FrameError::Varint(e)));
                        return Run {
                            out,
                            leftover: Vec::new(),
                        };
                    }
                },
            };
            let header = (f.offset() + width) as i128;
            let size = i128::from(raw)
                + i128::from(f.adjustment())
                + if f.includes_header() { 0 } else { header };
            if size < header || size > i128::from(u64::MAX) {
                out.push(Out::Error(FrameError::InvalidLength {
                    raw,
                    adjustment: f.adjustment(),
                }));
                return Run {
                    out,
                    leftover: Vec::new(),
                };
            }
            let max = f.max_frame_len();
            if size > max as i128 {
                if f.oversize() == OversizePolicy::Fail {
                    out.push(Out::Error(FrameError::FrameTooLong {
                        len: size as u64,
                        max,
                    }));
                    return Run {
                        out,
                        leftover: Vec::new(),
                    };
                }
                out.push(Out::Skipped(Oversize {
                    len: Some(size as u64),
                    max,
                }));
                if size as usize >= rest.len() {
                    return Run {
                        out,
                        leftover: Vec::new(),
                    };
                }
                pos += size as usize;
                continue;
            }
            let size = size as usize;
            if rest.len() < size {
                break;
            }
            out.push(Out::Frame(rest[header as usize..size].to_vec()));
            pos += size;
        }
        Run {
            out,
            leftover: input[pos..].to_vec(),
        }
    }

    fn configs() -> impl Strategy<Value = LengthPrefixed> {
        let field = prop_oneof![
            (1u8..=8, any::<bool>()).prop_map(|(b, e)| LengthField::fixed(b, e)),
            Just(LengthField::VARINT),
        ];
        (
            field,
            0usize..3,
            -6i64..6,
            any::<bool>(),
            0usize..48,
            any::<bool>(),
        )
            .prop_map(|(field, offset, adj, incl, max, skip)| {
                LengthPrefixed::new()
                    .with_length_field(field)
                    .with_offset(offset)
                    .with_adjustment(adj)
                    .with_includes_header(incl)
                    .with_max_frame_len(max)
                    .with_oversize(if skip {
                        OversizePolicy::Skip
                    } else {
                        OversizePolicy::Fail
                    })
            })
    }

    /// Input that mostly has plausible headers: pieces of (offset junk, a
    /// small length in the configured field, random body bytes).
    fn plausible_input(f: &LengthPrefixed, pieces: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut input = Vec::new();
        for (value, body) in pieces {
            input.extend(core::iter::repeat_n(0xee, f.offset()));
            match f.length_field() {
                LengthField::Fixed { bytes, big_endian } => {
                    let w = usize::from(bytes);
                    if big_endian {
                        input.extend_from_slice(&value.to_be_bytes()[8 - w..]);
                    } else {
                        input.extend_from_slice(&value.to_le_bytes()[..w]);
                    }
                }
                LengthField::Varint(_) => {
                    let (b, n) = varint::encode_array(*value);
                    input.extend_from_slice(&b[..n]);
                }
            }
            input.extend_from_slice(body);
        }
        input
    }

    proptest! {
        #[test]
        fn matches_reference_in_any_chunking(
            f in configs(),
            pieces in proptest::collection::vec(
                (0u64..40, proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
            c in cuts(16),
        ) {
            let input = plausible_input(&f, &pieces);
            let expected = reference(&f, &input);
            prop_assert_eq!(&settled(run_chunked(&mut f.clone(), &input, &c)), &expected);
            prop_assert_eq!(&settled(run_chunked(&mut f.clone(), &input, &vec![1; input.len()])), &expected);
        }

        #[test]
        fn random_bytes_match_reference(
            f in configs(),
            input in proptest::collection::vec(any::<u8>(), 0..200),
            c in cuts(16),
        ) {
            let expected = reference(&f, &input);
            prop_assert_eq!(&settled(run_chunked(&mut f.clone(), &input, &c)), &expected);
        }

        #[test]
        fn round_trip(
            f in configs(),
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..6),
            c in cuts(16),
        ) {
            let f = f.with_offset(0).with_max_frame_len(f.max_frame_len() + 16);
            let mut input = Vec::new();
            let mut sent = Vec::new();
            for p in &payloads {
                match f.encoded_len(p) {
                    Ok(n) => {
                        prop_assert!(p.len() >= f.min_payload_len() && p.len() <= f.max_payload_len());
                        let mut out = vec![0; n];
                        prop_assert_eq!(f.encode(p, &mut out), Ok(n));
                        input.extend_from_slice(&out);
                        sent.push(p.clone());
                    }
                    Err(EncodeError::PayloadTooShort { len, min }) => {
                        prop_assert_eq!(len, p.len());
                        prop_assert_eq!(min, f.min_payload_len());
                        prop_assert!(len < min);
                    }
                    Err(EncodeError::PayloadTooLong { len, max }) => {
                        prop_assert_eq!(len, p.len());
                        prop_assert_eq!(max, f.max_payload_len());
                        prop_assert!(len > max);
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            let run = run_chunked(&mut f.clone(), &input, &c);
            prop_assert_eq!(frames(&run), sent);
            prop_assert!(run.leftover.is_empty());
        }
    }
}
