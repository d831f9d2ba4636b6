//! Codec names on the command line, and the framing each one builds.
//!
//! | name | framing |
//! |---|---|
//! | `length` | `u32` big-endian length prefix (socktools) |
//! | `length:W` | `W`-byte (1..=8) big-endian length prefix, or `length:varint` (BSUInt) |
//! | `length:W:le` / `length:W:be` | `W`-byte prefix in that byte order |
//! | `bson` | BSON documents back to back (py-bson `sendobj`/`recvobj`) |
//! | `lines` | lines ended by `\n` (a `\r` before it is dropped on input) |
//! | `fixed:N` | every frame exactly `N` bytes |
//! | `json-header` | the socket tutorial's `u16` header length, JSON header, content |
//! | `packet` | the cs.packetstream packet stream (requests and responses) |

use std::fmt;
use std::str::FromStr;

use framewire::framing::{
    BsonDocument, Decode, Delimited, EncodeError, Fixed, FrameError, FrameHeader, Framing,
    JsonHeader, LengthField, LengthPrefixed, PacketFraming,
};

/// The names accepted, for error messages and `--help`.
pub(crate) const CODEC_NAMES: &str =
    "length[:W[:le|be]] (W = 1..8 or varint), bson, lines, fixed:N, json-header, packet";

/// A codec named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CodecSpec {
    /// Length-prefixed frames.
    Length(LengthField),
    /// BSON documents.
    Bson,
    /// `\n`-terminated lines.
    Lines,
    /// Fixed-size frames of this many bytes.
    Fixed(usize),
    /// JSON-header messages.
    JsonHeader,
    /// The cs.packetstream packet stream.
    Packet,
}

/// A codec name that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    /// The first part names no codec.
    #[error("unknown codec {name:?} (expected one of: {CODEC_NAMES})")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// `length:W` with a width that is not 1..=8 or `varint`.
    #[error("length width {width:?} is not 1..8 or varint")]
    Width {
        /// The width given.
        width: String,
    },
    /// `length:W:O` with an order that is not `le` or `be`.
    #[error("byte order {order:?} is not le or be")]
    Order {
        /// The order given.
        order: String,
    },
    /// `length:varint:O`: a varint has no byte order.
    #[error("a varint length has no byte order")]
    VarintOrder,
    /// `fixed` without a size, or a size that is not a positive integer.
    #[error("fixed frame size {size:?} is not a positive integer (use fixed:N)")]
    FixedSize {
        /// The size given (empty when missing).
        size: String,
    },
    /// More `:` parts than the codec takes.
    #[error("codec {name:?} takes no parameter {extra:?}")]
    Extra {
        /// The codec.
        name: String,
        /// The first part too many.
        extra: String,
    },
}

impl FromStr for CodecSpec {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, CodecError> {
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default();
        let no_more = |mut parts: std::str::Split<'_, char>| match parts.next() {
            Some(extra) => Err(CodecError::Extra {
                name: name.to_owned(),
                extra: extra.to_owned(),
            }),
            None => Ok(()),
        };
        let spec = match name {
            "length" => {
                let field = match parts.next() {
                    None => LengthField::U32_BE,
                    Some("varint") => {
                        if parts.next().is_some() {
                            return Err(CodecError::VarintOrder);
                        }
                        LengthField::VARINT
                    }
                    Some(width) => {
                        let Ok(bytes @ 1..=8) = width.parse::<u8>() else {
                            return Err(CodecError::Width {
                                width: width.to_owned(),
                            });
                        };
                        let big_endian = match parts.next() {
                            None | Some("be") => true,
                            Some("le") => false,
                            Some(order) => {
                                return Err(CodecError::Order {
                                    order: order.to_owned(),
                                })
                            }
                        };
                        LengthField::fixed(bytes, big_endian)
                    }
                };
                CodecSpec::Length(field)
            }
            "bson" => CodecSpec::Bson,
            "lines" => CodecSpec::Lines,
            "fixed" => {
                let size = parts.next().unwrap_or_default();
                match size.parse::<usize>() {
                    Ok(n) if n > 0 => CodecSpec::Fixed(n),
                    _ => {
                        return Err(CodecError::FixedSize {
                            size: size.to_owned(),
                        })
                    }
                }
            }
            "json-header" => CodecSpec::JsonHeader,
            "packet" => CodecSpec::Packet,
            _ => return Err(CodecError::Unknown { name: s.to_owned() }),
        };
        no_more(parts)?;
        Ok(spec)
    }
}

impl fmt::Display for CodecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecSpec::Length(LengthField::Fixed { bytes, big_endian }) => {
                let order = if *big_endian { "be" } else { "le" };
                write!(f, "length:{bytes}:{order}")
            }
            CodecSpec::Length(LengthField::Varint(_)) => f.write_str("length:varint"),
            CodecSpec::Bson => f.write_str("bson"),
            CodecSpec::Lines => f.write_str("lines"),
            CodecSpec::Fixed(n) => write!(f, "fixed:{n}"),
            CodecSpec::JsonHeader => f.write_str("json-header"),
            CodecSpec::Packet => f.write_str("packet"),
        }
    }
}

impl CodecSpec {
    /// The framing for this codec, with its default limit or `max_frame`
    /// bytes. For `packet` it cuts whole packets (the packet connection
    /// itself is a state machine on top).
    pub(crate) fn framing(self, max_frame: Option<usize>) -> AnyFraming {
        match self {
            CodecSpec::Length(field) => {
                let f = LengthPrefixed::new().with_length_field(field);
                AnyFraming::Length(match max_frame {
                    Some(max) => f.with_max_frame_len(max),
                    None => f,
                })
            }
            CodecSpec::Bson => AnyFraming::Bson(match max_frame {
                Some(max) => BsonDocument::new().with_max_len(max),
                None => BsonDocument::new(),
            }),
            CodecSpec::Lines => {
                let f = Delimited::new().with_strip_cr(true);
                AnyFraming::Lines(match max_frame {
                    Some(max) => f.with_max_line_len(max),
                    None => f,
                })
            }
            CodecSpec::Fixed(n) => AnyFraming::Fixed(Fixed::new(n)),
            CodecSpec::JsonHeader => AnyFraming::JsonHeader(match max_frame {
                Some(max) => JsonHeader::new().with_max_content_len(max),
                None => JsonHeader::new(),
            }),
            CodecSpec::Packet => AnyFraming::Packet(match max_frame {
                Some(max) => PacketFraming::new().with_max_packet_len(max),
                None => PacketFraming::new(),
            }),
        }
    }
}

/// One of the core framings, chosen at run time.
#[derive(Clone, Debug)]
pub(crate) enum AnyFraming {
    /// Length-prefixed.
    Length(LengthPrefixed),
    /// BSON documents.
    Bson(BsonDocument),
    /// Lines.
    Lines(Delimited),
    /// Fixed size.
    Fixed(Fixed),
    /// JSON header.
    JsonHeader(JsonHeader),
    /// Whole cs.packetstream packets.
    Packet(PacketFraming),
}

macro_rules! each {
    ($self:expr, $f:ident => $e:expr) => {
        match $self {
            AnyFraming::Length($f) => $e,
            AnyFraming::Bson($f) => $e,
            AnyFraming::Lines($f) => $e,
            AnyFraming::Fixed($f) => $e,
            AnyFraming::JsonHeader($f) => $e,
            AnyFraming::Packet($f) => $e,
        }
    };
}

impl Framing for AnyFraming {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        each!(self, f => f.decode(buf))
    }
    fn max_frame_len(&self) -> usize {
        each!(self, f => f.max_frame_len())
    }
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        each!(self, f => f.header(payload))
    }
    fn trailer(&self) -> &[u8] {
        each!(self, f => f.trailer())
    }
    fn reset(&mut self) {
        each!(self, f => f.reset());
    }
    fn is_discarding(&self) -> bool {
        each!(self, f => f.is_discarding())
    }
    fn encoded_len(&self, payload: &[u8]) -> Result<usize, EncodeError> {
        each!(self, f => f.encoded_len(payload))
    }
    fn encode(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
        each!(self, f => f.encode(payload, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let ok = [
            ("length", CodecSpec::Length(LengthField::U32_BE)),
            ("length:2", CodecSpec::Length(LengthField::U16_BE)),
            ("length:2:le", CodecSpec::Length(LengthField::U16_LE)),
            ("length:8:be", CodecSpec::Length(LengthField::U64_BE)),
            ("length:varint", CodecSpec::Length(LengthField::VARINT)),
            ("bson", CodecSpec::Bson),
            ("lines", CodecSpec::Lines),
            ("fixed:16", CodecSpec::Fixed(16)),
            ("json-header", CodecSpec::JsonHeader),
            ("packet", CodecSpec::Packet),
        ];
        for (name, spec) in ok {
            assert_eq!(name.parse::<CodecSpec>(), Ok(spec), "{name}");
            // Display gives a name that parses back to the same codec.
            assert_eq!(spec.to_string().parse::<CodecSpec>(), Ok(spec), "{name}");
        }
    }

    #[test]
    fn bad_names_say_why() {
        let bad = [
            ("", "unknown codec"),
            ("lenght", "unknown codec"),
            ("length:0", "width \"0\""),
            ("length:9", "width \"9\""),
            ("length:x", "width \"x\""),
            ("length:4:middle", "byte order \"middle\""),
            ("length:varint:le", "no byte order"),
            ("length:4:le:x", "no parameter \"x\""),
            ("fixed", "fixed frame size \"\""),
            ("fixed:0", "fixed frame size \"0\""),
            ("fixed:-3", "fixed frame size \"-3\""),
            ("bson:1", "no parameter \"1\""),
            ("packet:", "no parameter \"\""),
        ];
        for (name, why) in bad {
            let e = name.parse::<CodecSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{name:?}: {e}");
            assert!(!e.contains('\n'), "{name:?}: one line");
        }
    }

    #[test]
    fn framings_follow_the_spec() {
        let mut out = [0u8; 16];
        let f = CodecSpec::Length(LengthField::U16_LE).framing(None);
        let n = f.encode(b"hi", &mut out).unwrap();
        assert_eq!(&out[..n], b"\x02\x00hi");
        let f = CodecSpec::Lines.framing(None);
        let n = f.encode(b"hi", &mut out).unwrap();
        assert_eq!(&out[..n], b"hi\n");
        let f = CodecSpec::Fixed(3).framing(None);
        assert!(f.encode(b"hi", &mut out).is_err());
        let f = CodecSpec::Length(LengthField::U32_BE).framing(Some(8));
        assert_eq!(f.max_frame_len(), 8);
        let f = CodecSpec::Packet.framing(None);
        assert_eq!(f.encode(b"\x03\x00\x02\x00", &mut out), Ok(4));
        assert!(f.encode(b"hello", &mut out).is_err());
    }
}
