//! [`FrameSpec`]: which core framing a framed gateway speaks toward TCP,
//! parsed from the short names a command line uses.

use std::fmt;
use std::str::FromStr;

use framewire::framing::{
    BsonDocument, Decode, Delimited, EncodeError, Fixed, FrameError, FrameHeader, Framing,
    JsonHeader, LengthField, LengthPrefixed, PacketFraming,
};

/// One of the core framings, chosen by name.
///
/// | name | framing | WebSocket message = | TCP side |
/// |---|---|---|---|
/// | `length` | [`LengthPrefixed::new`]: `u32` big-endian payload length | the payload | length + payload |
/// | `length:N` | an `N`-byte (1..=8) big-endian length | the payload | length + payload |
/// | `length:N:le`, `length:N:be` | the same, little- or big-endian | the payload | length + payload |
/// | `length:varint` | a BSUInt length ([`LengthPrefixed::varint`]) | the payload | length + payload |
/// | `bson` | [`BsonDocument`] | the whole document | the same bytes |
/// | `lines` | [`Delimited::new`]: lines ended by `\n` | the line without `\n` | line + `\n` |
/// | `fixed:N` | [`Fixed`] of `N` bytes (N >= 1) | the `N` bytes | the same bytes |
/// | `json-header` | [`JsonHeader`] | the whole message (prefix, header, content) | the same bytes |
/// | `packet` | [`PacketFraming`] (cs.packetstream) | the whole packet | the same bytes |
///
/// Each framing has its core defaults (limits included); build a variant
/// directly to change them. A `FrameSpec` is itself a [`Framing`] (it
/// dispatches to the one inside), and the gateway clones it for each
/// connection, so per-connection decoding state starts fresh.
///
/// ```
/// use framewire_tokio::gateway::FrameSpec;
/// let spec: FrameSpec = "length:2:le".parse().unwrap();
/// assert_eq!(spec.to_string(), "length:2:le");
/// assert_eq!("packet".parse::<FrameSpec>().unwrap().to_string(), "packet");
/// assert!("length:9".parse::<FrameSpec>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSpec {
    /// Length-prefixed frames; the WebSocket message is the payload.
    Length(LengthPrefixed),
    /// BSON documents; the WebSocket message is the whole document.
    Bson(BsonDocument),
    /// Delimited lines; the WebSocket message is the line without its
    /// delimiter (unless the [`Delimited`] keeps it).
    Lines(Delimited),
    /// Fixed-size frames; the WebSocket message is the frame.
    Fixed(Fixed),
    /// JSON-header messages; the WebSocket message is the whole message.
    JsonHeader(JsonHeader),
    /// cs.packetstream packets; the WebSocket message is the whole packet.
    Packet(PacketFraming),
}

impl FrameSpec {
    /// The names [`FromStr`] accepts, for help texts.
    pub const NAMES: &'static [&'static str] = &[
        "length[:1..8[:le|be]]",
        "length:varint",
        "bson",
        "lines",
        "fixed:N",
        "json-header",
        "packet",
    ];

    /// Whether a frame is its own payload (the format carries its own length
    /// or size: BSON, JSON header, packets, fixed size): the WebSocket message
    /// is then the whole unit, and the gateway adds nothing toward TCP.
    pub fn is_self_delimiting(&self) -> bool {
        match self {
            FrameSpec::Bson(_)
            | FrameSpec::Fixed(_)
            | FrameSpec::JsonHeader(_)
            | FrameSpec::Packet(_) => true,
            FrameSpec::Length(_) => false,
            FrameSpec::Lines(d) => d.header(d.delimiter()).is_ok(),
        }
    }

    fn framing(&self) -> &dyn Framing {
        match self {
            FrameSpec::Length(f) => f,
            FrameSpec::Bson(f) => f,
            FrameSpec::Lines(f) => f,
            FrameSpec::Fixed(f) => f,
            FrameSpec::JsonHeader(f) => f,
            FrameSpec::Packet(f) => f,
        }
    }

    fn framing_mut(&mut self) -> &mut dyn Framing {
        match self {
            FrameSpec::Length(f) => f,
            FrameSpec::Bson(f) => f,
            FrameSpec::Lines(f) => f,
            FrameSpec::Fixed(f) => f,
            FrameSpec::JsonHeader(f) => f,
            FrameSpec::Packet(f) => f,
        }
    }
}

impl Framing for FrameSpec {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        self.framing_mut().decode(buf)
    }
    fn max_frame_len(&self) -> usize {
        self.framing().max_frame_len()
    }
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        self.framing().header(payload)
    }
    fn trailer(&self) -> &[u8] {
        self.framing().trailer()
    }
    fn reset(&mut self) {
        self.framing_mut().reset();
    }
    fn is_discarding(&self) -> bool {
        self.framing().is_discarding()
    }
}

/// A framing name [`FrameSpec::from_str`] does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Not one of [`FrameSpec::NAMES`].
    #[error("unknown framing {name:?} (expected one of: length[:1..8[:le|be]], length:varint, bson, lines, fixed:N, json-header, packet)")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// A `length:N` width that is not 1..=8 or `varint`.
    #[error("length width {width:?} is not 1..8 or varint")]
    Width {
        /// The width given.
        width: String,
    },
    /// A byte order that is not `le` or `be`.
    #[error("byte order {order:?} is not le or be")]
    ByteOrder {
        /// The byte order given.
        order: String,
    },
    /// A `fixed:N` size that is not a number of at least 1.
    #[error("fixed size {size:?} is not a number of at least 1")]
    Size {
        /// The size given.
        size: String,
    },
    /// More `:`-separated parts than the framing takes.
    #[error("framing {name:?} takes at most {max} parameter(s)")]
    TooManyParts {
        /// The whole text given.
        name: String,
        /// How many parameters the framing takes.
        max: usize,
    },
}

impl FromStr for FrameSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default();
        let params: Vec<&str> = parts.collect();
        let at_most = |max: usize| {
            if params.len() > max {
                Err(SpecError::TooManyParts {
                    name: s.to_owned(),
                    max,
                })
            } else {
                Ok(())
            }
        };
        match name {
            "length" => {
                at_most(2)?;
                let field = match params.first() {
                    None => LengthField::U32_BE,
                    Some(&"varint") => {
                        at_most(1)?;
                        LengthField::VARINT
                    }
                    Some(width) => {
                        let Ok(bytes @ 1..=8) = width.parse::<u8>() else {
                            return Err(SpecError::Width {
                                width: (*width).to_owned(),
                            });
                        };
                        let big_endian = match params.get(1) {
                            None | Some(&"be") => true,
                            Some(&"le") => false,
                            Some(order) => {
                                return Err(SpecError::ByteOrder {
                                    order: (*order).to_owned(),
                                })
                            }
                        };
                        LengthField::fixed(bytes, big_endian)
                    }
                };
                Ok(FrameSpec::Length(
                    LengthPrefixed::new().with_length_field(field),
                ))
            }
            "fixed" => {
                at_most(1)?;
                let size = params.first().copied().unwrap_or_default();
                match size.parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(FrameSpec::Fixed(Fixed::new(n))),
                    _ => Err(SpecError::Size {
                        size: size.to_owned(),
                    }),
                }
            }
            "bson" | "lines" | "json-header" | "packet" => {
                at_most(0)?;
                Ok(match name {
                    "bson" => FrameSpec::Bson(BsonDocument::new()),
                    "lines" => FrameSpec::Lines(Delimited::new()),
                    "json-header" => FrameSpec::JsonHeader(JsonHeader::new()),
                    _ => FrameSpec::Packet(PacketFraming::new()),
                })
            }
            _ => Err(SpecError::Unknown { name: s.to_owned() }),
        }
    }
}

/// The name [`FromStr`] parses back to the same kind of framing (limits and
/// options beyond the name are not shown).
impl fmt::Display for FrameSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameSpec::Length(l) => match l.length_field() {
                LengthField::Fixed { bytes, big_endian } => {
                    let order = if big_endian { "be" } else { "le" };
                    write!(f, "length:{bytes}:{order}")
                }
                LengthField::Varint(_) => f.write_str("length:varint"),
            },
            FrameSpec::Bson(_) => f.write_str("bson"),
            FrameSpec::Lines(_) => f.write_str("lines"),
            FrameSpec::Fixed(x) => write!(f, "fixed:{}", x.size()),
            FrameSpec::JsonHeader(_) => f.write_str("json-header"),
            FrameSpec::Packet(_) => f.write_str("packet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (text, printed) in [
            ("length", "length:4:be"),
            ("length:4", "length:4:be"),
            ("length:2:le", "length:2:le"),
            ("length:8:be", "length:8:be"),
            ("length:1", "length:1:be"),
            ("length:varint", "length:varint"),
            ("bson", "bson"),
            ("lines", "lines"),
            ("fixed:16", "fixed:16"),
            ("json-header", "json-header"),
            ("packet", "packet"),
        ] {
            let spec: FrameSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), printed, "{text}");
            assert_eq!(printed.parse::<FrameSpec>().unwrap(), spec);
        }
        assert_eq!(
            "length:2:le".parse::<FrameSpec>().unwrap(),
            FrameSpec::Length(LengthPrefixed::new().with_length_field(LengthField::U16_LE))
        );
    }

    #[test]
    fn bad_names_are_typed() {
        let err = |s: &str| s.parse::<FrameSpec>().unwrap_err();
        assert_eq!(
            err("lenght"),
            SpecError::Unknown {
                name: "lenght".into()
            }
        );
        assert_eq!(err("length:9"), SpecError::Width { width: "9".into() });
        assert_eq!(err("length:0"), SpecError::Width { width: "0".into() });
        assert_eq!(
            err("length:2:xe"),
            SpecError::ByteOrder { order: "xe".into() }
        );
        assert_eq!(
            err("length:varint:le"),
            SpecError::TooManyParts {
                name: "length:varint:le".into(),
                max: 1
            }
        );
        assert_eq!(
            err("fixed"),
            SpecError::Size {
                size: String::new()
            }
        );
        assert_eq!(err("fixed:0"), SpecError::Size { size: "0".into() });
        assert_eq!(
            err("bson:1"),
            SpecError::TooManyParts {
                name: "bson:1".into(),
                max: 0
            }
        );
        assert!(err("").to_string().contains("unknown framing"));
    }

    #[test]
    fn dispatches_to_the_framing_inside() {
        let mut spec: FrameSpec = "length:2:be".parse().unwrap();
        assert_eq!(
            spec.decode(b"\x00\x02hi").unwrap(),
            Decode::Frame {
                len: 4,
                payload: 2..4
            }
        );
        assert_eq!(spec.header(b"hi").unwrap().as_slice(), b"\x00\x02");
        let lines: FrameSpec = "lines".parse().unwrap();
        assert_eq!(lines.trailer(), b"\n");
        assert!(!lines.is_self_delimiting());
        assert!(!spec.is_self_delimiting());
        for s in ["bson", "packet", "json-header", "fixed:3"] {
            assert!(s.parse::<FrameSpec>().unwrap().is_self_delimiting(), "{s}");
        }
        assert!(FrameSpec::Lines(Delimited::new().with_keep_delimiter(true)).is_self_delimiting());
        let packet: FrameSpec = "packet".parse().unwrap();
        assert_eq!(packet.max_frame_len(), 16 * 1024 * 1024);
        assert_eq!(packet.header(b"\x03\x00\x02\x00"), Ok(FrameHeader::EMPTY));
        assert_eq!(packet.header(b"\x03\x00"), Err(EncodeError::Malformed));
    }
}
