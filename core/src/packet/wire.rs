//! The cs.packetstream packet format, without allocation.
//!
//! ```text
//! packet := BSUInt(len(body)) body
//! body   := BSUInt(tag) BSUInt(F) [BSUInt(channel) if F&1] [BSUInt(rq_type_wire) if F&2] payload
//! F      := (pflags << 2) | (is_request << 1) | (channel != 0)
//! ```
//!
//! * A **request** carries `rq_type_wire = rq_type + 1` (wire 0 is reserved for
//!   the EOF and ERQ markers) and `pflags` = the caller's request flags.
//! * A **response** has no rq_type field and `pflags = (user_flags << 1) | ok`.
//!   A failure is `pflags = 0` with a UTF-8 reason as the payload.
//! * **EOF** is the request `channel 0, tag 0, flags 0, rq_type_wire 0`, empty
//!   payload (`03 00 02 00`); **ERQ** ("end of requests") is the same with tag 1
//!   (`03 01 02 00`). Both are recognised by exact equality of every field.
//!
//! [`Packet`] borrows its payload from the caller's buffer. [`Packet::parse`]
//! is zero-copy and three-way (`Ok(None)` = need more bytes), and checks the
//! packet length against [`ParseLimits::max_packet_len`] as soon as the length
//! varint has been read, before any body byte is awaited. [`Packet::encode`]
//! writes into a caller buffer and reports [`BufferTooSmall`] with the size
//! required.
//!
//! # Panic contract
//!
//! No function here panics on any input: every length is checked, and a
//! [`Packet`] can only be built with fields whose encoding fits a `u64`
//! (`F = pflags << 2` must not overflow), so [`Packet::encode`] cannot fail
//! for any reason but the buffer size.
//!
//! ```
//! use framewire::packet::wire::{Packet, ParseLimits};
//! let rq = Packet::request(0, 2, 0, 0, b"hello").unwrap();
//! let mut buf = [0u8; 16];
//! let n = rq.encode(&mut buf).unwrap();
//! assert_eq!(&buf[..n], b"\x08\x02\x02\x01hello");
//! let (parsed, used) = Packet::parse(&buf[..n], &ParseLimits::default()).unwrap().unwrap();
//! assert_eq!((parsed, used), (rq, n));
//! assert_eq!(parsed.request_type(), Some(0));
//! // A prefix is "need more", not an error:
//! assert_eq!(Packet::parse(&buf[..3], &ParseLimits::default()), Ok(None));
//! ```

use core::fmt;

pub use crate::varint::BufferTooSmall;
use crate::varint::{self, VarintError, VarintRules};

/// Default for [`ParseLimits::max_packet_len`]: 16 MiB, length prefix included.
pub const DEFAULT_MAX_PACKET_LEN: usize = 16 * 1024 * 1024;

/// The most bytes a packet's header (length prefix, tag, F, channel,
/// rq_type) can take: five canonical `u64` varints.
pub const MAX_HEADER_LEN: usize = 5 * varint::MAX_OCTETS;

/// The largest `pflags` value: `F = pflags << 2` must fit in a `u64`.
pub const MAX_PFLAGS: u64 = u64::MAX >> 2;

/// The largest request flags value (request flags are the `pflags`).
pub const MAX_REQUEST_FLAGS: u64 = MAX_PFLAGS;

/// The largest response user flags value (`pflags = (flags << 1) | ok`).
pub const MAX_RESPONSE_FLAGS: u64 = MAX_PFLAGS >> 1;

/// The largest user request type (`rq_type_wire = rq_type + 1` must fit).
pub const MAX_RQ_TYPE: u64 = u64::MAX - 1;

/// The EOF marker packet: no more packets follow from its sender.
pub const EOF: Packet<'static> = Packet {
    channel: 0,
    tag: 0,
    pflags: 0,
    rq_type_wire: Some(0),
    payload: &[],
};

/// The ERQ ("end of requests") marker packet: its sender sends no more requests.
pub const ERQ: Packet<'static> = Packet {
    channel: 0,
    tag: 1,
    pflags: 0,
    rq_type_wire: Some(0),
    payload: &[],
};

/// The encoding of [`EOF`].
pub const EOF_BYTES: [u8; 4] = [0x03, 0x00, 0x02, 0x00];

/// The encoding of [`ERQ`].
pub const ERQ_BYTES: [u8; 4] = [0x03, 0x01, 0x02, 0x00];

/// Writes `v` canonically at `out[pos..]`; returns the new position. At most
/// four varints precede it in a header, so it always fits. Always inlined
/// into the header encoder, where the first field's position is a
/// constant.
#[allow(clippy::inline_always)]
#[inline(always)]
fn put_varint(out: &mut [u8; MAX_HEADER_LEN], pos: usize, v: u64) -> usize {
    if v < 0x80 {
        out[pos] = v as u8;
        return pos + 1;
    }
    // Tags below 2^21 written straight, with no length computation: its
    // dependent chain (bit scan, multiply) was the hottest spot of the
    // packet core under `perf` on the loopback bench.
    if v < 1 << 14 {
        out[pos] = (v >> 7) as u8 | 0x80;
        out[pos + 1] = (v & 0x7f) as u8;
        return pos + 2;
    }
    if v < 1 << 21 {
        out[pos] = (v >> 14) as u8 | 0x80;
        out[pos + 1] = ((v >> 7) & 0x7f) as u8 | 0x80;
        out[pos + 2] = (v & 0x7f) as u8;
        return pos + 3;
    }
    // Last octet first: the low seven bits, then each higher group with
    // the continuation bit, backwards.
    let end = pos + varint::encoded_len(v);
    let mut at = end - 1;
    out[at] = (v & 0x7f) as u8;
    let mut rest = v >> 7;
    while rest != 0 {
        at -= 1;
        out[at] = (rest as u8) | 0x80;
        rest >>= 7;
    }
    end
}

/// The longest header [`small_header`] writes.
#[cfg(feature = "alloc")]
pub(crate) const SMALL_HEADER_LEN: usize = 6;

/// The header of a small packet on channel 0, written straight (no
/// `Packet`, no length computed before it is written): `F` the whole `F`
/// field, `rq_type_wire` a request's wire type. `Some((header, its
/// length))` when the tag is below 2^21, `F` and the wire type below 128
/// and the body below 128 bytes (a one-octet length prefix); `None` for
/// anything else, which [`Packet::encode_header_at`] writes. The bytes are
/// the same either way (tested).
#[cfg(feature = "alloc")]
#[allow(clippy::inline_always)]
#[inline(always)]
pub(crate) fn small_header(
    tag: u64,
    f: u64,
    rq_type_wire: Option<u64>,
    payload_len: usize,
) -> Option<([u8; SMALL_HEADER_LEN], usize)> {
    let mut h = [0u8; SMALL_HEADER_LEN];
    let mut n = if tag < 0x80 {
        h[1] = tag as u8;
        2
    } else if tag < 1 << 14 {
        h[1] = (tag >> 7) as u8 | 0x80;
        h[2] = (tag & 0x7f) as u8;
        3
    } else if tag < 1 << 21 {
        h[1] = (tag >> 14) as u8 | 0x80;
        h[2] = ((tag >> 7) & 0x7f) as u8 | 0x80;
        h[3] = (tag & 0x7f) as u8;
        4
    } else {
        return None;
    };
    if f >= 0x80 {
        return None;
    }
    h[n] = f as u8;
    n += 1;
    if let Some(w) = rq_type_wire {
        if w >= 0x80 {
            return None;
        }
        h[n] = w as u8;
        n += 1;
    }
    let body = (n - 1).checked_add(payload_len)?;
    if body >= 0x80 {
        return None;
    }
    h[0] = body as u8;
    Some((h, n))
}

/// Decodes the header field at the start of `rest` and moves `rest` past
/// it. Always inlined: counted by `scripts/instructions.sh`, a call per
/// field cost 17 instructions a request more.
#[allow(clippy::inline_always)]
#[inline(always)]
fn next_field(
    rest: &mut &[u8],
    field: Field,
    body_len: usize,
    rules: varint::VarintRules,
) -> Result<u64, PacketError> {
    match varint::decode(rest, rules) {
        Ok(Some((v, n))) => {
            *rest = rest.get(n..).unwrap_or_default();
            Ok(v)
        }
        Ok(None) => Err(PacketError::BodyTooShort { field, body_len }),
        Err(error) => Err(PacketError::Varint { field, error }),
    }
}

/// A header field of a packet, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Field {
    /// The length prefix.
    Length,
    /// The tag.
    Tag,
    /// The `F` field (flags, is_request, has_channel).
    Flags,
    /// The channel (present when `F & 1`).
    Channel,
    /// The wire request type (present when `F & 2`).
    RqType,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Length => "length",
            Field::Tag => "tag",
            Field::Flags => "flags",
            Field::Channel => "channel",
            Field::RqType => "rq_type",
        })
    }
}

/// The peer sent bytes that are not a valid packet. A protocol error: the
/// stream cannot be resynchronised after one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PacketError {
    /// A varint header field is malformed (too long, over `u64`, non-canonical
    /// under strict rules).
    Varint {
        /// The field being read.
        field: Field,
        /// What was wrong with it.
        error: VarintError,
    },
    /// The packet (length prefix included) is longer than the limit. Reported
    /// as soon as the length prefix is read.
    TooLong {
        /// The packet's size in bytes, length prefix included (saturating).
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The body ended inside a header field.
    BodyTooShort {
        /// The field that did not fit.
        field: Field,
        /// The body length from the length prefix.
        body_len: usize,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::Varint { field, error } => write!(f, "bad {field} varint: {error}"),
            PacketError::TooLong { len, max } => {
                write!(f, "packet of {len} bytes is over the limit of {max}")
            }
            PacketError::BodyTooShort { field, body_len } => write!(
                f,
                "packet body of {body_len} bytes ends inside the {field} field"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PacketError {}

/// A packet field value cannot be represented on the wire. A local error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FieldError {
    /// Flags too large: `F` would overflow a `u64`.
    FlagsTooLarge {
        /// The flags given.
        flags: u64,
        /// The largest allowed for this kind of packet.
        max: u64,
    },
    /// The request type is `u64::MAX`, so `rq_type + 1` does not fit.
    RqTypeTooLarge {
        /// The request type given.
        rq_type: u64,
    },
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::FlagsTooLarge { flags, max } => {
                write!(f, "flags {flags} over the maximum of {max}")
            }
            FieldError::RqTypeTooLarge { rq_type } => {
                write!(
                    f,
                    "request type {rq_type} over the maximum of {MAX_RQ_TYPE}"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FieldError {}

/// Limits applied by [`Packet::parse`] to untrusted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ParseLimits {
    /// The longest packet accepted, length prefix included. Default
    /// [`DEFAULT_MAX_PACKET_LEN`] (16 MiB). The original has no limit.
    pub max_packet_len: usize,
    /// How varints are read. Default: the original's leniency (leading `0x80`
    /// octets accepted), at most 10 octets per varint.
    pub varint: VarintRules,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_packet_len: DEFAULT_MAX_PACKET_LEN,
            varint: VarintRules::default(),
        }
    }
}

/// One packet, borrowing its payload.
///
/// Fields are private so that every `Packet` is encodable; build one with
/// [`Packet::request`], [`Packet::response`], [`Packet::failure`],
/// [`Packet::from_parts`] or [`Packet::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Packet<'a> {
    channel: u64,
    tag: u64,
    pflags: u64,
    rq_type_wire: Option<u64>,
    payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// A packet from its wire fields: `pflags` as on the wire (`F >> 2`), and
    /// `rq_type_wire` `Some` for a request, `None` for a response.
    pub fn from_parts(
        channel: u64,
        tag: u64,
        pflags: u64,
        rq_type_wire: Option<u64>,
        payload: &'a [u8],
    ) -> Result<Self, FieldError> {
        if pflags > MAX_PFLAGS {
            return Err(FieldError::FlagsTooLarge {
                flags: pflags,
                max: MAX_PFLAGS,
            });
        }
        Ok(Packet {
            channel,
            tag,
            pflags,
            rq_type_wire,
            payload,
        })
    }

    /// A request of user type `rq_type` (sent as `rq_type + 1`) with the
    /// caller's `flags` unchanged.
    pub fn request(
        channel: u64,
        tag: u64,
        rq_type: u64,
        flags: u64,
        payload: &'a [u8],
    ) -> Result<Self, FieldError> {
        let Some(wire) = rq_type.checked_add(1) else {
            return Err(FieldError::RqTypeTooLarge { rq_type });
        };
        Self::from_parts(channel, tag, flags, Some(wire), payload)
    }

    /// A response: `pflags = (flags << 1) | ok`.
    pub fn response(
        channel: u64,
        tag: u64,
        ok: bool,
        flags: u64,
        payload: &'a [u8],
    ) -> Result<Self, FieldError> {
        if flags > MAX_RESPONSE_FLAGS {
            return Err(FieldError::FlagsTooLarge {
                flags,
                max: MAX_RESPONSE_FLAGS,
            });
        }
        Ok(Packet {
            channel,
            tag,
            pflags: (flags << 1) | u64::from(ok),
            rq_type_wire: None,
            payload,
        })
    }

    /// A failure response (`pflags = 0`) with `reason` as its payload.
    pub fn failure(channel: u64, tag: u64, reason: &'a str) -> Self {
        Packet {
            channel,
            tag,
            pflags: 0,
            rq_type_wire: None,
            payload: reason.as_bytes(),
        }
    }

    /// A failure response (`pflags = 0`) whose reason is given as bytes (the
    /// original sends UTF-8 text; see [`Packet::failure`]).
    pub fn failure_bytes(channel: u64, tag: u64, reason: &'a [u8]) -> Self {
        Packet {
            channel,
            tag,
            pflags: 0,
            rq_type_wire: None,
            payload: reason,
        }
    }

    /// The channel (0 unless `F & 1`).
    pub fn channel(&self) -> u64 {
        self.channel
    }

    /// The tag.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The packet flags as on the wire (`F >> 2`).
    pub fn pflags(&self) -> u64 {
        self.pflags
    }

    /// `Some(rq_type_wire)` for a request, `None` for a response.
    pub fn rq_type_wire(&self) -> Option<u64> {
        self.rq_type_wire
    }

    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Whether this is a request (`F & 2`).
    pub fn is_request(&self) -> bool {
        self.rq_type_wire.is_some()
    }

    /// The user request type (`rq_type_wire - 1`); `None` for a response or
    /// for wire type 0 (EOF, ERQ, or a malformed marker).
    pub fn request_type(&self) -> Option<u64> {
        self.rq_type_wire.and_then(|w| w.checked_sub(1))
    }

    /// A request's flags (`None` for a response).
    pub fn request_flags(&self) -> Option<u64> {
        self.rq_type_wire.map(|_| self.pflags)
    }

    /// A response's `(ok, user_flags)`: `(pflags & 1 != 0, pflags >> 1)`.
    /// `None` for a request.
    pub fn response_status(&self) -> Option<(bool, u64)> {
        match self.rq_type_wire {
            Some(_) => None,
            None => Some((self.pflags & 1 != 0, self.pflags >> 1)),
        }
    }

    /// Exactly the [`EOF`] marker.
    pub fn is_eof(&self) -> bool {
        // Every other packet fails the first test: no whole comparison.
        self.rq_type_wire == Some(0) && *self == EOF
    }

    /// Exactly the [`ERQ`] marker.
    pub fn is_erq(&self) -> bool {
        self.rq_type_wire == Some(0) && *self == ERQ
    }

    /// A request with wire type 0 that is not exactly [`EOF`] or [`ERQ`]
    /// (the original logs "malformed EOF packet received" and stops reading).
    pub fn is_malformed_marker(&self) -> bool {
        self.rq_type_wire == Some(0) && !self.is_eof() && !self.is_erq()
    }

    /// The `F` field.
    pub fn f_field(&self) -> u64 {
        // pflags <= MAX_PFLAGS by construction, so the shift cannot overflow.
        (self.pflags << 2) | (u64::from(self.is_request()) << 1) | u64::from(self.channel != 0)
    }

    /// Bytes of the body before the payload.
    fn body_header_len(&self) -> usize {
        let mut n = varint::encoded_len(self.tag) + varint::encoded_len(self.f_field());
        if self.channel != 0 {
            n += varint::encoded_len(self.channel);
        }
        if let Some(w) = self.rq_type_wire {
            n += varint::encoded_len(w);
        }
        n
    }

    /// The body length (the value of the length prefix), saturating.
    pub fn body_len(&self) -> usize {
        self.body_header_len().saturating_add(self.payload.len())
    }

    /// The whole encoded packet's length, length prefix included (saturating).
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        varint::encoded_len(body as u64).saturating_add(body)
    }

    /// Writes the header (length prefix and every field before the payload)
    /// into `out` and returns its length. The payload follows it on the wire;
    /// this lets a sender queue the payload without copying it.
    pub fn encode_header(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let header = self.encode_header_at(out);
        out.copy_within(header.clone(), 0);
        header.len()
    }

    /// Writes the header somewhere in `out` and returns where: the fields
    /// go first, after room for the longest length prefix, and the prefix
    /// right before them once the body's length is known (so no field is
    /// measured before it is written).
    pub(crate) fn encode_header_at(
        &self,
        out: &mut [u8; MAX_HEADER_LEN],
    ) -> core::ops::Range<usize> {
        // Every varint fits: five of at most MAX_OCTETS each.
        const FIELDS: usize = varint::MAX_OCTETS;
        let mut end = put_varint(out, FIELDS, self.tag);
        end = put_varint(out, end, self.f_field());
        if self.channel != 0 {
            end = put_varint(out, end, self.channel);
        }
        if let Some(w) = self.rq_type_wire {
            end = put_varint(out, end, w);
        }
        let body_len = (end - FIELDS).saturating_add(self.payload.len());
        let start = if body_len < 0x80 {
            FIELDS - 1
        } else {
            FIELDS - varint::encoded_len(body_len as u64)
        };
        put_varint(out, start, body_len as u64);
        start..end
    }

    /// Writes the whole packet to the start of `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let required = self.encoded_len();
        let Some(out) = out.get_mut(..required) else {
            return Err(BufferTooSmall { required });
        };
        let mut header = [0u8; MAX_HEADER_LEN];
        let h = self.encode_header(&mut header);
        out[..h].copy_from_slice(&header[..h]);
        out[h..].copy_from_slice(self.payload);
        Ok(required)
    }

    /// The total length (length prefix included) of the packet at the start
    /// of `buf`, as soon as its length prefix is complete. `Ok(None)`: the
    /// prefix is not complete yet. The limit is checked here, so a huge
    /// declared length fails before any body byte is awaited.
    pub fn peek_len(buf: &[u8], limits: &ParseLimits) -> Result<Option<usize>, PacketError> {
        Ok(Self::peek_prefix(buf, limits)?.map(|(total, _)| total))
    }

    /// `(total, prefix_len)` of the packet at the start of `buf`. Always
    /// inlined: it opens every parse.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn peek_prefix(
        buf: &[u8],
        limits: &ParseLimits,
    ) -> Result<Option<(usize, usize)>, PacketError> {
        let (body_len, octets) = match varint::decode(buf, limits.varint) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(None),
            Err(error) => {
                return Err(PacketError::Varint {
                    field: Field::Length,
                    error,
                })
            }
        };
        let total = body_len.saturating_add(octets as u64);
        match usize::try_from(total) {
            Ok(total) if total <= limits.max_packet_len => Ok(Some((total, octets))),
            _ => Err(PacketError::TooLong {
                len: total,
                max: limits.max_packet_len,
            }),
        }
    }

    /// Parses one packet from the start of `buf`.
    ///
    /// `Ok(Some((packet, consumed)))`: a whole packet of `consumed` bytes;
    /// bytes after it are left alone. `Ok(None)`: more bytes are needed.
    /// `Err`: the bytes present prove the input invalid.
    pub fn parse(
        buf: &'a [u8],
        limits: &ParseLimits,
    ) -> Result<Option<(Packet<'a>, usize)>, PacketError> {
        Self::parse_inlined(buf, limits)
    }

    /// [`parse`](Self::parse), always inlined: for the connections' per-packet
    /// step, where the returned `Result<Option<(Packet, usize)>>` then never
    /// goes through memory.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn parse_inlined(
        buf: &'a [u8],
        limits: &ParseLimits,
    ) -> Result<Option<(Packet<'a>, usize)>, PacketError> {
        let Some((total, prefix)) = Self::peek_prefix(buf, limits)? else {
            return Ok(None);
        };
        let Some(packet) = buf.get(..total) else {
            return Ok(None);
        };
        let body = &packet[prefix..];
        let body_len = body.len();
        let mut rest = body;
        let rules = limits.varint;
        let field = |field: Field, rest: &mut &'a [u8]| next_field(rest, field, body_len, rules);
        let tag = field(Field::Tag, &mut rest)?;
        let f = field(Field::Flags, &mut rest)?;
        let channel = if f & 1 != 0 {
            field(Field::Channel, &mut rest)?
        } else {
            0
        };
        let rq_type_wire = if f & 2 != 0 {
            Some(field(Field::RqType, &mut rest)?)
        } else {
            None
        };
        Ok(Some((
            Packet {
                channel,
                tag,
                pflags: f >> 2,
                rq_type_wire,
                payload: rest,
            },
            total,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    use crate::testutil::unhex as hex;

    fn encode_vec(p: &Packet<'_>) -> Vec<u8> {
        let mut out = vec![0xa5; p.encoded_len() + 3];
        let n = p.encode(&mut out).unwrap();
        assert_eq!(n, p.encoded_len());
        assert!(out[n..].iter().all(|&b| b == 0xa5), "wrote past the packet");
        out.truncate(n);
        out
    }

    /// Checks encode, and parse three ways: whole, every prefix (need more),
    /// with trailing bytes left alone.
    fn golden(p: &Packet<'_>, hex_bytes: &str) {
        let bytes = hex(hex_bytes);
        assert_eq!(encode_vec(p), bytes, "encode {p:?}");
        let limits = ParseLimits::default();
        assert_eq!(Packet::parse(&bytes, &limits), Ok(Some((*p, bytes.len()))));
        for cut in 0..bytes.len() {
            assert_eq!(Packet::parse(&bytes[..cut], &limits), Ok(None), "cut {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(&[0x03, 0xff]);
        assert_eq!(
            Packet::parse(&trailing, &limits),
            Ok(Some((*p, bytes.len())))
        );
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn small_headers_are_the_general_encoders() {
        let mut taken = 0;
        for tag in [0u64, 2, 127, 128, 16_383, 16_384, (1 << 21) - 1, 1 << 21] {
            for pflags in [0u64, 1, 15, 31, 32] {
                for payload in [
                    &b""[..],
                    b"0123456789abcdef",
                    &[7u8; 122][..],
                    &[7u8; 124][..],
                ] {
                    for p in [
                        Packet::from_parts(0, tag, pflags, None, payload).unwrap(),
                        Packet::from_parts(0, tag, pflags, Some(1), payload).unwrap(),
                        Packet::from_parts(0, tag, pflags, Some(127), payload).unwrap(),
                        Packet::from_parts(0, tag, pflags, Some(128), payload).unwrap(),
                    ] {
                        let small =
                            small_header(p.tag(), p.f_field(), p.rq_type_wire(), payload.len());
                        let mut out = [0u8; MAX_HEADER_LEN];
                        let n = p.encode_header(&mut out);
                        match small {
                            Some((h, m)) => {
                                taken += 1;
                                assert_eq!(&h[..m], &out[..n], "{p:?}");
                            }
                            None => assert!(
                                p.body_len() >= 0x80
                                    || tag >= 1 << 21
                                    || p.f_field() >= 0x80
                                    || p.rq_type_wire().is_some_and(|w| w >= 0x80),
                                "{p:?} left to the general encoder"
                            ),
                        }
                    }
                }
            }
        }
        assert!(taken > 100, "only {taken} written straight");
    }

    // Every row of the WIRE.md §2 table (produced by the real
    // `bytes(cs.packetstream.Packet(...))`).
    #[test]
    fn golden_request_tag2_type0_hello() {
        let p = Packet::request(0, 2, 0, 0, b"hello").unwrap();
        golden(&p, "08 02 02 01 68656c6c6f");
        assert_eq!(p.request_type(), Some(0));
        assert_eq!(p.rq_type_wire(), Some(1));
    }

    #[test]
    fn golden_request_tag3_type1_flags3() {
        let p = Packet::request(0, 3, 1, 3, b"abc").unwrap();
        golden(&p, "06 03 0e 02 616263");
        assert_eq!(p.request_flags(), Some(3));
    }

    #[test]
    fn golden_request_channel5() {
        let p = Packet::request(5, 2, 0, 0, b"x").unwrap();
        golden(&p, "05 02 03 05 01 78");
        assert_eq!(p.channel(), 5);
    }

    #[test]
    fn golden_response_ok_hello() {
        let p = Packet::response(0, 2, true, 0, b"hello").unwrap();
        golden(&p, "07 02 04 68656c6c6f");
        assert_eq!(p.response_status(), Some((true, 0)));
    }

    #[test]
    fn golden_response_ok_flags7() {
        let p = Packet::response(0, 2, true, 7, b"flags").unwrap();
        golden(&p, "07 02 3c 666c616773");
        assert_eq!(p.f_field(), 0x3c);
        assert_eq!(p.response_status(), Some((true, 7)));
    }

    #[test]
    fn golden_response_multibyte_flags() {
        let p = Packet::response(0, 12, true, 63, b"f").unwrap();
        golden(&p, "04 0c 83 7c 66");
        assert_eq!(p.f_field(), 508);
        assert_eq!(p.response_status(), Some((true, 63)));
    }

    #[test]
    fn golden_failure() {
        let p = Packet::failure(0, 5, "exception during handler");
        golden(
            &p,
            "1a 05 00 657863657074696f6e20647572696e672068616e646c6572",
        );
        assert_eq!(p.response_status(), Some((false, 0)));
        assert_eq!(p, Packet::response(0, 5, false, 0, p.payload()).unwrap());
    }

    #[test]
    fn golden_tag300_payload200() {
        let payload: Vec<u8> = (0..200u8).collect();
        let p = Packet::response(0, 300, true, 0, &payload).unwrap();
        let mut expect = std::string::String::from("81 4b 82 2c 04");
        for b in 0..200u8 {
            use std::fmt::Write as _;
            write!(expect, "{b:02x}").unwrap();
        }
        golden(&p, &expect);
        assert_eq!(p.body_len(), 203);
    }

    #[test]
    fn golden_eof_erq() {
        golden(&EOF, "03000200");
        golden(&ERQ, "03010200");
        assert_eq!(encode_vec(&EOF), EOF_BYTES);
        assert_eq!(encode_vec(&ERQ), ERQ_BYTES);
        assert!(EOF.is_eof() && !EOF.is_erq() && !EOF.is_malformed_marker());
        assert!(ERQ.is_erq() && !ERQ.is_eof() && !ERQ.is_malformed_marker());
        assert_eq!(EOF.request_type(), None);
    }

    // Cross-checked with the real Python: bytes(Packet(is_request=False,
    // channel=7, tag=2**40, flags=5<<1, payload=b'no')) and
    // bytes(Packet(is_request=True, channel=2**33, tag=0, flags=2**20,
    // rq_type=2**63, payload=b'')).
    #[test]
    fn golden_python_big_fields() {
        let p = Packet::response(7, 1 << 40, false, 5, b"no").unwrap();
        golden(&p, "0aa0808080800029076e6f");
        let p = Packet::request(1 << 33, 0, (1 << 63) - 1, 1 << 20, b"").unwrap();
        golden(&p, "140082808003a08080800081808080808080808000");
        assert_eq!(p.rq_type_wire(), Some(1 << 63));
    }

    #[test]
    fn markers_need_exact_fields() {
        // Tags 0/1 with a real rq_type are ordinary requests.
        let p = Packet::request(0, 0, 0, 0, b"").unwrap();
        assert!(!p.is_eof() && !p.is_malformed_marker());
        // Wire type 0 with anything else is a malformed marker.
        for p in [
            Packet::from_parts(0, 2, 0, Some(0), b"").unwrap(),
            Packet::from_parts(0, 0, 1, Some(0), b"").unwrap(),
            Packet::from_parts(0, 1, 0, Some(0), b"x").unwrap(),
            Packet::from_parts(3, 0, 0, Some(0), b"").unwrap(),
        ] {
            assert!(p.is_malformed_marker(), "{p:?}");
            assert!(!p.is_eof() && !p.is_erq());
        }
        // A response with tag 0 is not a marker.
        let r = Packet::response(0, 0, true, 0, b"").unwrap();
        assert!(!r.is_eof() && !r.is_malformed_marker());
    }

    #[test]
    fn field_limits() {
        assert_eq!(
            Packet::request(0, 2, u64::MAX, 0, b""),
            Err(FieldError::RqTypeTooLarge { rq_type: u64::MAX })
        );
        assert_eq!(
            Packet::request(0, 2, 0, MAX_REQUEST_FLAGS + 1, b""),
            Err(FieldError::FlagsTooLarge {
                flags: MAX_REQUEST_FLAGS + 1,
                max: MAX_REQUEST_FLAGS
            })
        );
        assert_eq!(
            Packet::response(0, 2, true, MAX_RESPONSE_FLAGS + 1, b""),
            Err(FieldError::FlagsTooLarge {
                flags: MAX_RESPONSE_FLAGS + 1,
                max: MAX_RESPONSE_FLAGS
            })
        );
        let top = Packet::response(0, 2, true, MAX_RESPONSE_FLAGS, b"").unwrap();
        assert_eq!(top.f_field(), u64::MAX - 3);
        let bytes = encode_vec(&top);
        let (back, _) = Packet::parse(&bytes, &ParseLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(back.response_status(), Some((true, MAX_RESPONSE_FLAGS)));
    }

    #[test]
    fn encode_reports_required_size() {
        let p = Packet::request(0, 2, 0, 0, b"hello").unwrap();
        let mut small = [0u8; 8];
        assert_eq!(p.encode(&mut small), Err(BufferTooSmall { required: 9 }));
    }

    #[test]
    fn huge_length_fails_before_body() {
        let limits = ParseLimits::default();
        // 2^62 declared: fails on the prefix alone.
        let (prefix, n) = varint::encode_array(1 << 62);
        assert_eq!(
            Packet::parse(&prefix[..n], &limits),
            Err(PacketError::TooLong {
                len: (1 << 62) + n as u64,
                max: DEFAULT_MAX_PACKET_LEN
            })
        );
        // Just over the limit, counting the prefix.
        let small = ParseLimits {
            max_packet_len: 10,
            ..limits
        };
        assert_eq!(Packet::parse(&[0x09], &small), Ok(None));
        assert_eq!(Packet::peek_len(&[0x09], &small), Ok(Some(10)));
        assert_eq!(
            Packet::peek_len(&[0x0a], &small),
            Err(PacketError::TooLong { len: 11, max: 10 })
        );
        // u64::MAX body length saturates instead of wrapping.
        let (prefix, n) = varint::encode_array(u64::MAX);
        assert_eq!(
            Packet::peek_len(&prefix[..n], &limits),
            Err(PacketError::TooLong {
                len: u64::MAX,
                max: DEFAULT_MAX_PACKET_LEN
            })
        );
    }

    #[test]
    fn malformed_varints_are_typed() {
        let limits = ParseLimits::default();
        assert_eq!(
            Packet::parse(&[0x80; 12], &limits),
            Err(PacketError::Varint {
                field: Field::Length,
                error: VarintError::TooManyOctets { max: 10 }
            })
        );
        let mut tag_overflow = vec![0x0c];
        tag_overflow
            .extend_from_slice(&[0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        tag_overflow.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(
            Packet::parse(&tag_overflow, &limits),
            Err(PacketError::Varint {
                field: Field::Tag,
                error: VarintError::Overflow { octets: 10 }
            })
        );
        let strict = ParseLimits {
            varint: VarintRules::STRICT,
            ..limits
        };
        assert_eq!(
            Packet::parse(&[0x04, 0x80, 0x02, 0x00, 0x04], &strict),
            Err(PacketError::Varint {
                field: Field::Tag,
                error: VarintError::NonCanonical
            })
        );
    }

    #[test]
    fn non_canonical_fields_accepted_like_the_original() {
        // tag `80 05` = 5, F `80 04` = response ok.
        let bytes = [0x05, 0x80, 0x05, 0x80, 0x04, 0x61];
        let (p, n) = Packet::parse(&bytes, &ParseLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(p, Packet::response(0, 5, true, 0, b"a").unwrap());
    }

    #[test]
    fn body_too_short_names_the_field() {
        let limits = ParseLimits::default();
        let cases: &[(&[u8], Field)] = &[
            (&[0x00], Field::Tag),
            (&[0x01, 0x02], Field::Flags),
            (&[0x01, 0x82], Field::Tag),
            (&[0x02, 0x02, 0x01], Field::Channel),
            (&[0x02, 0x02, 0x02], Field::RqType),
            (&[0x03, 0x02, 0x03, 0x05], Field::RqType),
        ];
        for &(bytes, field) in cases {
            let body_len = bytes[0] as usize;
            assert_eq!(
                Packet::parse(bytes, &limits),
                Err(PacketError::BodyTooShort { field, body_len }),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn channel_flag_with_zero_channel_is_accepted() {
        // The original parses `F&1` with channel 0 as channel 0.
        let bytes = [0x04, 0x02, 0x07, 0x00, 0x01];
        let (p, _) = Packet::parse(&bytes, &ParseLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(p, Packet::request(0, 2, 0, 1, b"").unwrap());
    }

    /// `put_varint`'s straight-line cases (one to three octets) and its
    /// loop write what the reference `varint::encode` writes, at every
    /// length boundary and anywhere in the buffer.
    #[test]
    fn put_varint_matches_the_reference_encoder() {
        let mut values = vec![0, u64::MAX];
        for bits in 1..64 {
            let b = 1u64 << bits;
            values.extend([b - 1, b, b + 1]);
        }
        for v in values {
            let mut reference = [0u8; varint::MAX_OCTETS];
            let n = varint::encode(v, &mut reference).unwrap();
            for pos in [0, 3, MAX_HEADER_LEN - varint::MAX_OCTETS] {
                let mut out = [0xa5u8; MAX_HEADER_LEN];
                assert_eq!(put_varint(&mut out, pos, v), pos + n, "{v}");
                assert_eq!(&out[pos..pos + n], &reference[..n], "{v} at {pos}");
                assert!(out[..pos].iter().chain(&out[pos + n..]).all(|&b| b == 0xa5));
            }
        }
    }

    fn arb_packet() -> impl Strategy<Value = (u64, u64, u64, Option<u64>, Vec<u8>)> {
        (
            prop_oneof![Just(0u64), any::<u64>()],
            any::<u64>(),
            0..=MAX_PFLAGS,
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
    }

    proptest! {
        #[test]
        fn round_trip(
            (channel, tag, pflags, rq, payload) in arb_packet(),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let p = Packet::from_parts(channel, tag, pflags, rq, &payload).unwrap();
            let mut bytes = encode_vec(&p);
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            let limits = ParseLimits::default();
            prop_assert_eq!(Packet::parse(&bytes, &limits), Ok(Some((p, len))));
            prop_assert_eq!(Packet::parse(&bytes[..len - 1], &limits), Ok(None));
            let mut header = [0u8; MAX_HEADER_LEN];
            let h = p.encode_header(&mut header);
            prop_assert_eq!(&header[..h], &bytes[..len - payload.len()]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let limits = ParseLimits { max_packet_len: 40, ..ParseLimits::default() };
            if let Ok(Some((p, n))) = Packet::parse(&bytes, &limits) {
                prop_assert!(n <= bytes.len() && n <= 40);
                prop_assert!(p.payload().len() < n);
            }
        }
    }
}
