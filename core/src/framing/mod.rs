//! Framings: how a byte stream is cut into frames, and how a payload is wrapped
//! into one.
//!
//! Every wire format of the seeds is a [`Framing`]:
//!
//! | framing | type | default limit |
//! |---|---|---|
//! | length-prefixed (socktools, HOWTO) | [`LengthPrefixed`] | 8 MiB frame |
//! | BSON document (py-bson `sendobj`/`recvobj`) | [`BsonDocument`] | 16 MiB document |
//! | delimited lines (HOWTO, socktools line mode) | [`Delimited`] | 64 KiB line |
//! | fixed size (HOWTO) | [`Fixed`] | the size itself |
//! | JSON header (socket tutorial) | [`JsonHeader`] | 64 KiB header, 16 MiB content |
//! | cs.packetstream packets | [`PacketFraming`] | 16 MiB packet |
//!
//! A framing is a small state machine that looks at the start of a buffer and
//! says whether a whole frame is there ([`Framing::decode`]). It never copies
//! or allocates: a frame is a range of the caller's buffer. Framings are used
//! directly on a buffer, or through a framed stream that owns the receive
//! buffer and the output queue.
//!
//! # The decode contract
//!
//! * `decode(buf)` looks at `buf`, which starts at the first byte of the next
//!   frame (or of the bytes still to be skipped).
//! * [`Decode::Incomplete`]: no decision is possible yet. The next call gets the
//!   same bytes with more appended (a framing may remember how far it has
//!   already scanned).
//! * [`Decode::Frame`]: `buf[..len]` is one frame; the caller drops those bytes
//!   before the next call. `payload` is the part handed to the user.
//! * [`Decode::Skip`]: drop `len` bytes without producing a frame. `len` may be
//!   larger than `buf` (an oversized length-prefixed frame being skipped): the
//!   caller discards arriving bytes until `len` have gone. `oversize` is set on
//!   the first `Skip` of an over-long frame, so it is reported once.
//! * `Err(FrameError)`: the peer broke the protocol. The stream is unusable
//!   (a framing does not resynchronise after an error).
//!
//! Every limit is checked on the bytes present before a frame is complete, so
//! an untrusted length never makes the caller buffer more than the limit.

mod bson;
mod delimited;
mod fixed;
pub(crate) mod json_header;
mod length;
mod packet;
#[cfg(test)]
pub(crate) mod testkit;

use core::fmt;
use core::ops::Range;

pub use self::bson::BsonDocument;
pub use self::delimited::Delimited;
pub use self::fixed::Fixed;
pub use self::json_header::JsonHeader;
pub use self::length::{LengthField, LengthPrefixed};
pub use self::packet::{PacketCheck, PacketFraming};

/// The most header bytes any framing puts in front of a payload.
pub const MAX_HEADER_LEN: usize = 24;

/// What [`Framing::decode`] found at the start of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Decode {
    /// More bytes are needed. `need`, when known, is the total number of
    /// buffered bytes (from the start of `buf`) needed for the next decision.
    Incomplete {
        /// Total bytes needed from the start of the buffer, if known.
        need: Option<usize>,
    },
    /// `buf[..len]` is one complete frame; `buf[payload]` is its payload.
    Frame {
        /// Bytes the frame occupies, header and trailer included.
        len: usize,
        /// Where the payload is inside the frame.
        payload: Range<usize>,
    },
    /// Discard `len` bytes (possibly more than are buffered) without a frame.
    Skip {
        /// Bytes to discard from the start of the buffer.
        len: u64,
        /// Set on the first `Skip` of an over-long frame: its size and the limit.
        oversize: Option<Oversize>,
    },
}

/// An over-long frame that is being skipped under [`OversizePolicy::Skip`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Oversize {
    /// The frame's size, header included, if the framing knows it (length
    /// prefixes do; a long line is reported when it passes the limit).
    pub len: Option<u64>,
    /// The limit it broke.
    pub max: usize,
}

/// What to do with a frame over the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OversizePolicy {
    /// Fail with [`FrameError::FrameTooLong`] (or the framing's own variant).
    /// The default.
    #[default]
    Fail,
    /// Discard the frame, report it once, and carry on with the next one.
    /// Only where the format makes the next frame findable (length prefixes,
    /// delimiters).
    Skip,
}

/// The peer sent bytes that break the framing. These are protocol errors:
/// after one the stream is in a terminal state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FrameError {
    /// A frame's real size (header included, after adjustment) is over the limit.
    FrameTooLong {
        /// The frame's size in bytes.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A length field, after adjustment, is smaller than the header it is in,
    /// or the adjustment overflows.
    InvalidLength {
        /// The raw value of the length field.
        raw: u64,
        /// The configured adjustment.
        adjustment: i64,
    },
    /// A varint length is malformed.
    Varint(crate::varint::VarintError),
    /// A BSON document's int32 length is negative or below the minimum of 5.
    BsonLength {
        /// The length as read (little-endian int32).
        len: i32,
    },
    /// A BSON document does not end in 0x00.
    BsonTerminator {
        /// The byte found where 0x00 should be.
        found: u8,
    },
    /// A line is longer than the limit (without its delimiter).
    LineTooLong {
        /// The line is at least this long: [`Delimited`] reports `max + 1`,
        /// the first length over the limit, whatever the chunking.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A JSON header is longer than the limit.
    JsonHeaderTooLong {
        /// The header length from the u16 prefix.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A JSON header is not valid UTF-8; `valid_up_to` bytes were.
    JsonHeaderUtf8 {
        /// Offset of the first invalid byte inside the header.
        valid_up_to: usize,
    },
    /// A JSON header is not a JSON object of the expected shape.
    JsonHeaderSyntax,
    /// A JSON header lacks a required key.
    JsonHeaderMissingKey {
        /// The missing key.
        key: &'static str,
    },
    /// A JSON header's `content-length` is over the limit.
    ContentTooLong {
        /// The declared content length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A JSON-header message's size disagrees with its u16 prefix and
    /// `content-length` (only when parsing a whole message from a slice;
    /// the streaming decoder waits for the bytes instead).
    JsonMessageLength {
        /// The size the prefix and header call for (a lower bound if the
        /// slice ends inside the header).
        expected: u64,
        /// The size of the slice.
        actual: usize,
    },
    /// A cs.packetstream packet's header is malformed ([`PacketFraming`]).
    Packet(crate::packet::wire::PacketError),
}

impl From<crate::varint::VarintError> for FrameError {
    fn from(e: crate::varint::VarintError) -> Self {
        FrameError::Varint(e)
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::FrameTooLong { len, max } => {
                write!(f, "frame of {len} bytes is over the limit of {max}")
            }
            FrameError::InvalidLength { raw, adjustment } => write!(
                f,
                "length field {raw} with adjustment {adjustment} gives an impossible frame size"
            ),
            FrameError::Varint(e) => write!(f, "bad varint length: {e}"),
            FrameError::BsonLength { len } => {
                write!(
                    f,
                    "BSON document length {len} is invalid (must be at least 5)"
                )
            }
            FrameError::BsonTerminator { found } => {
                write!(f, "BSON document ends in {found:#04x}, not 0x00")
            }
            FrameError::LineTooLong { len, max } => {
                write!(f, "line of {len} bytes is over the limit of {max}")
            }
            FrameError::JsonHeaderTooLong { len, max } => {
                write!(f, "JSON header of {len} bytes is over the limit of {max}")
            }
            FrameError::JsonHeaderUtf8 { valid_up_to } => {
                write!(
                    f,
                    "JSON header is not UTF-8 (invalid at byte {valid_up_to})"
                )
            }
            FrameError::JsonHeaderSyntax => f.write_str("JSON header is not a valid JSON object"),
            FrameError::JsonHeaderMissingKey { key } => {
                write!(f, "JSON header lacks the required key {key:?}")
            }
            FrameError::ContentTooLong { len, max } => {
                write!(f, "content of {len} bytes is over the limit of {max}")
            }
            FrameError::JsonMessageLength { expected, actual } => write!(
                f,
                "JSON-header message of {actual} bytes, but its header calls for {expected}"
            ),
            FrameError::Packet(e) => write!(f, "bad packet: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// A payload could not be framed. These are local errors: the caller asked
/// for something the framing cannot send; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small; `required` bytes are needed.
    BufferTooSmall {
        /// Bytes the whole frame needs.
        required: usize,
    },
    /// The frame would be over the limit the peer enforces (or that this side
    /// is configured with), or its length does not fit the length field.
    PayloadTooLong {
        /// The payload length.
        len: usize,
        /// The largest payload this framing can send.
        max: usize,
    },
    /// The payload is shorter than the framing can describe (a length field
    /// with a positive adjustment cannot go below zero).
    PayloadTooShort {
        /// The payload length.
        len: usize,
        /// The shortest payload this framing can send.
        min: usize,
    },
    /// A delimited payload contains the delimiter at `at`.
    ContainsDelimiter {
        /// Offset of the delimiter inside the payload.
        at: usize,
    },
    /// A fixed-size frame got a payload of the wrong size.
    WrongSize {
        /// The payload length.
        len: usize,
        /// The fixed frame size.
        expected: usize,
    },
    /// The payload is not a well-formed frame of a self-describing format
    /// (a BSON document whose length field or terminator is wrong, a JSON-header
    /// message that does not parse).
    Malformed,
    /// The framing's configuration cannot encode (e.g. a length field at an
    /// offset, which only describes received frames).
    Unsupported,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { required } => {
                write!(f, "output buffer too small: {required} bytes required")
            }
            EncodeError::PayloadTooLong { len, max } => {
                write!(f, "payload of {len} bytes is over the limit of {max}")
            }
            EncodeError::PayloadTooShort { len, min } => {
                write!(f, "payload of {len} bytes is under the minimum of {min}")
            }
            EncodeError::ContainsDelimiter { at } => {
                write!(f, "payload contains the delimiter at byte {at}")
            }
            EncodeError::WrongSize { len, expected } => {
                write!(f, "payload of {len} bytes in a fixed framing of {expected}")
            }
            EncodeError::Malformed => f.write_str("payload is not a well-formed frame"),
            EncodeError::Unsupported => f.write_str("this framing configuration cannot encode"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// The bytes a framing puts in front of a payload (at most [`MAX_HEADER_LEN`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl FrameHeader {
    /// No header bytes.
    pub const EMPTY: FrameHeader = FrameHeader {
        bytes: [0; MAX_HEADER_LEN],
        len: 0,
    };

    /// A header holding `bytes`. Panics if longer than [`MAX_HEADER_LEN`]
    /// (a framing bug, never a peer's doing).
    pub fn new(bytes: &[u8]) -> Self {
        let mut h = FrameHeader::EMPTY;
        h.bytes[..bytes.len()].copy_from_slice(bytes);
        h.len = bytes.len() as u8;
        h
    }

    /// The header bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for FrameHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FrameHeader")
            .field(&self.as_slice())
            .finish()
    }
}

/// A way of cutting a byte stream into frames and wrapping payloads into frames.
///
/// See the [module documentation](self) for the decode contract.
pub trait Framing {
    /// Looks for one frame at the start of `buf`.
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError>;

    /// The largest frame this framing accepts, header included. A receive
    /// buffer of this size can hold any frame it will deliver.
    fn max_frame_len(&self) -> usize;

    /// Validates `payload` and returns the header to put in front of it.
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError>;

    /// The bytes to put after every payload (a delimiter), usually none.
    fn trailer(&self) -> &[u8] {
        &[]
    }

    /// Forgets any partial decoding progress (after the caller dropped its
    /// buffered bytes).
    fn reset(&mut self) {}

    /// Whether the framing is part-way through discarding an over-long frame
    /// whose end it has not seen yet (a line under
    /// [`OversizePolicy::Skip`] before its delimiter arrived). A close of the
    /// stream then falls inside a frame, not between frames. Framings that
    /// know the size of what they skip (length prefixes) say so with
    /// [`Decode::Skip::len`] instead and leave this `false`.
    fn is_discarding(&self) -> bool {
        false
    }

    /// The size of the whole frame for `payload`.
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, EncodeError> {
        let header = self.header(payload)?;
        Ok(header.as_slice().len() + payload.len() + self.trailer().len())
    }

    /// Writes the whole frame for `payload` into `out`, returning its length.
    fn encode(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
        let header = self.header(payload)?;
        let header = header.as_slice();
        let trailer = self.trailer();
        let required = header.len() + payload.len() + trailer.len();
        let Some(out) = out.get_mut(..required) else {
            return Err(EncodeError::BufferTooSmall { required });
        };
        let (h, rest) = out.split_at_mut(header.len());
        let (p, t) = rest.split_at_mut(payload.len());
        h.copy_from_slice(header);
        p.copy_from_slice(payload);
        t.copy_from_slice(trailer);
        Ok(required)
    }
}

impl<F: Framing + ?Sized> Framing for &mut F {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        (**self).decode(buf)
    }
    fn max_frame_len(&self) -> usize {
        (**self).max_frame_len()
    }
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        (**self).header(payload)
    }
    fn trailer(&self) -> &[u8] {
        (**self).trailer()
    }
    fn reset(&mut self) {
        (**self).reset();
    }
    fn is_discarding(&self) -> bool {
        (**self).is_discarding()
    }
}
