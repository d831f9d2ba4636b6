//! The Real Python socket tutorial's application protocol (WIRE.md §4): a
//! `u16` big-endian header length, a UTF-8 JSON object header, then the
//! content.
//!
//! ```text
//! message := uint16be(len(hdr)) hdr content
//! hdr     := {"byteorder": …, "content-type": …, "content-encoding": …, "content-length": N}
//! ```
//!
//! The header is parsed once per message with `serde-json-core` (no
//! allocation) as soon as it is all there; the content length it declares is
//! checked against the limit before any content is awaited, and remembered
//! until the content is complete. The four keys are required (others are
//! ignored, a repeated key's last value wins, as in Python's `json.loads`):
//! `content-length` must be a non-negative integer and the other three
//! strings. Strings may use any JSON escape, `\uXXXX` surrogate pairs
//! included; their escapes are checked here and decoded by
//! [`crate::message::json_header`].
//!
//! Stricter than the original, which trusts whatever `json.loads` returns:
//! the header may nest arrays and objects at most
//! [`JsonHeader::MAX_NESTING`] deep (the
//! parser recurses), strings may not hold raw control characters or lone
//! surrogates, and `null` is not a string.

use super::{Decode, EncodeError, FrameError, FrameHeader, Framing};
use core::fmt;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Bytes of the header length prefix.
const PREFIX_LEN: usize = 2;

/// JSON-header messages; the payload is the whole message (prefix, header
/// and content), self-describing like a BSON document. Build or read one
/// with [`crate::message::json_header`].
///
/// Limits: the header (default and at most 65535 bytes, what the `u16`
/// prefix allows; [`FrameError::JsonHeaderTooLong`], checked from the prefix
/// alone) and the content (default 16 MiB; [`FrameError::ContentTooLong`],
/// checked as soon as the header is parsed). Over-long messages always fail:
/// the protocol carries one request per connection, so there is nothing to
/// skip to.
///
/// ```
/// use framewire::framing::{Decode, Framing, JsonHeader};
/// let msg = b"\x00\x67{\"byteorder\": \"little\", \"content-type\": \"text/plain\", \
///             \"content-encoding\": \"utf-8\", \"content-length\": 2}hi";
/// let mut f = JsonHeader::new();
/// // Header incomplete; then header parsed, content awaited; then whole.
/// assert_eq!(f.decode(&msg[..30]).unwrap(), Decode::Incomplete { need: Some(105) });
/// assert_eq!(f.decode(&msg[..106]).unwrap(), Decode::Incomplete { need: Some(107) });
/// assert_eq!(f.decode(msg).unwrap(), Decode::Frame { len: 107, payload: 0..107 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JsonHeader {
    max_header_len: usize,
    max_content_len: usize,
    /// The whole size of the message whose header has been parsed.
    pending: Option<usize>,
}

impl Default for JsonHeader {
    fn default() -> Self {
        JsonHeader::new()
    }
}

impl JsonHeader {
    /// The default (and largest) header length: 65535, what a `u16` holds.
    pub const DEFAULT_MAX_HEADER_LEN: usize = u16::MAX as usize;
    /// The default limit on the content: 16 MiB.
    pub const DEFAULT_MAX_CONTENT_LEN: usize = 16 * 1024 * 1024;
    /// The deepest nesting of arrays and objects accepted in a header (the
    /// header object itself is depth 1). Deeper headers are
    /// [`FrameError::JsonHeaderSyntax`].
    pub const MAX_NESTING: usize = 32;

    /// Headers up to 65535 bytes, content up to 16 MiB.
    pub const fn new() -> Self {
        JsonHeader {
            max_header_len: Self::DEFAULT_MAX_HEADER_LEN,
            max_content_len: Self::DEFAULT_MAX_CONTENT_LEN,
            pending: None,
        }
    }

    /// Sets the longest header (JSON bytes, without the prefix) accepted or
    /// sent. Values over 65535 act as 65535.
    #[must_use]
    pub const fn with_max_header_len(mut self, max: usize) -> Self {
        self.max_header_len = if max > Self::DEFAULT_MAX_HEADER_LEN {
            Self::DEFAULT_MAX_HEADER_LEN
        } else {
            max
        };
        self
    }

    /// Sets the longest content accepted or sent.
    #[must_use]
    pub const fn with_max_content_len(mut self, max: usize) -> Self {
        self.max_content_len = max;
        self
    }

    /// The longest header accepted.
    pub const fn max_header_len(&self) -> usize {
        self.max_header_len
    }

    /// The longest content accepted.
    pub const fn max_content_len(&self) -> usize {
        self.max_content_len
    }
}

impl Framing for JsonHeader {
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        let len = if let Some(len) = self.pending {
            len
        } else {
            let Some(&prefix) = buf.first_chunk::<PREFIX_LEN>() else {
                return Ok(Decode::Incomplete {
                    need: Some(PREFIX_LEN),
                });
            };
            let header_len = usize::from(u16::from_be_bytes(prefix));
            if header_len > self.max_header_len {
                return Err(FrameError::JsonHeaderTooLong {
                    len: header_len,
                    max: self.max_header_len,
                });
            }
            let content_start = PREFIX_LEN + header_len;
            let Some(header) = buf.get(PREFIX_LEN..content_start) else {
                return Ok(Decode::Incomplete {
                    need: Some(content_start),
                });
            };
            let fields = parse_header(header)?;
            let too_long = FrameError::ContentTooLong {
                len: fields.content_length,
                max: self.max_content_len,
            };
            let content_len = usize::try_from(fields.content_length)
                .ok()
                .filter(|&n| n <= self.max_content_len)
                .ok_or(too_long)?;
            let len = content_start.checked_add(content_len).ok_or(too_long)?;
            self.pending = Some(len);
            len
        };
        if buf.len() < len {
            Ok(Decode::Incomplete { need: Some(len) })
        } else {
            self.pending = None;
            Ok(Decode::Frame {
                len,
                payload: 0..len,
            })
        }
    }

    fn max_frame_len(&self) -> usize {
        (PREFIX_LEN + self.max_header_len).saturating_add(self.max_content_len)
    }

    /// Checks that `payload` is one whole JSON-header message within the
    /// limits; the header is empty (the message carries its own).
    ///
    /// Errors: [`EncodeError::Malformed`] if it does not parse or its size
    /// disagrees with its header; [`EncodeError::PayloadTooLong`] with the
    /// header's length and limit, or the content's.
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        let (fields, content_start) = split_message(payload).map_err(|_| EncodeError::Malformed)?;
        let header_len = content_start - PREFIX_LEN;
        if header_len > self.max_header_len {
            return Err(EncodeError::PayloadTooLong {
                len: header_len,
                max: self.max_header_len,
            });
        }
        // split_message checked that the content is exactly content-length.
        let content_len = payload.len() - content_start;
        debug_assert_eq!(content_len as u64, fields.content_length);
        if content_len > self.max_content_len {
            return Err(EncodeError::PayloadTooLong {
                len: content_len,
                max: self.max_content_len,
            });
        }
        Ok(FrameHeader::EMPTY)
    }

    fn reset(&mut self) {
        self.pending = None;
    }
}

/// The four fields of a parsed header; strings still JSON-escaped (escapes
/// checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawFields<'a> {
    pub(crate) byteorder: &'a str,
    pub(crate) content_type: &'a str,
    pub(crate) content_encoding: &'a str,
    pub(crate) content_length: u64,
}

/// Parses a whole message in `frame`: its header fields and where the
/// content starts. The content is exactly `content-length` bytes to the end.
pub(crate) fn split_message(frame: &[u8]) -> Result<(RawFields<'_>, usize), FrameError> {
    let actual = frame.len();
    let Some(&prefix) = frame.first_chunk::<PREFIX_LEN>() else {
        return Err(FrameError::JsonMessageLength {
            expected: PREFIX_LEN as u64,
            actual,
        });
    };
    let content_start = PREFIX_LEN + usize::from(u16::from_be_bytes(prefix));
    let Some(header) = frame.get(PREFIX_LEN..content_start) else {
        return Err(FrameError::JsonMessageLength {
            expected: content_start as u64,
            actual,
        });
    };
    let fields = parse_header(header)?;
    // A content-length near u64::MAX is reported as u64::MAX.
    let expected = (content_start as u64).saturating_add(fields.content_length);
    if expected != actual as u64 {
        return Err(FrameError::JsonMessageLength { expected, actual });
    }
    Ok((fields, content_start))
}

/// Parses the JSON header (without its prefix).
pub(crate) fn parse_header(json: &[u8]) -> Result<RawFields<'_>, FrameError> {
    let text = core::str::from_utf8(json).map_err(|e| FrameError::JsonHeaderUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    check_structure(text)?;
    let (found, _) =
        serde_json_core::from_str::<Found<'_>>(text).map_err(|_| FrameError::JsonHeaderSyntax)?;
    let missing = |key| FrameError::JsonHeaderMissingKey { key };
    let fields = RawFields {
        byteorder: found.byteorder.ok_or(missing(KEYS[0]))?,
        content_type: found.content_type.ok_or(missing(KEYS[1]))?,
        content_encoding: found.content_encoding.ok_or(missing(KEYS[2]))?,
        content_length: found.content_length.ok_or(missing(KEYS[3]))?,
    };
    // Every string, these included, was checked by `check_structure`.
    Ok(fields)
}

/// The required keys, in the order the tutorial writes them.
pub(crate) const KEYS: [&str; 4] = [
    "byteorder",
    "content-type",
    "content-encoding",
    "content-length",
];

/// Rejects arrays/objects nested deeper than [`JsonHeader::MAX_NESTING`]
/// before the recursive parser sees them, and checks every string in the
/// header (keys and values, known or not) for bad escapes, lone surrogates
/// and raw control characters: the JSON parser underneath borrows string
/// bodies without checking them, and Python's `json.loads` refuses such a
/// header.
fn check_structure(text: &str) -> Result<(), FrameError> {
    let mut depth = 0usize;
    let mut string_start = None;
    let mut escaped = false;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if let Some(start) = string_start {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                // `start` and `i` are at ASCII quotes: char boundaries.
                check_string(&text[start..i])?;
                string_start = None;
            }
        } else {
            match b {
                b'"' => string_start = Some(i + 1),
                b'[' | b'{' => {
                    depth += 1;
                    if depth > JsonHeader::MAX_NESTING {
                        return Err(FrameError::JsonHeaderSyntax);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

fn check_string(raw: &str) -> Result<(), FrameError> {
    let mut rest = raw;
    while let Some((_, next)) = next_char(rest).map_err(|()| FrameError::JsonHeaderSyntax)? {
        rest = next;
    }
    Ok(())
}

/// Decodes the first character of the body of a JSON string (between the
/// quotes): `Ok(None)` at the end, `Err` on a raw control character, a bad
/// escape or a lone surrogate.
pub(crate) fn next_char(raw: &str) -> Result<Option<(char, &str)>, ()> {
    let mut chars = raw.chars();
    let Some(c) = chars.next() else {
        return Ok(None);
    };
    match c {
        '\\' => {}
        '\0'..='\u{1f}' | '"' => return Err(()),
        c => return Ok(Some((c, chars.as_str()))),
    }
    // The escaped character is taken as a `char`, not a byte: an escape of a
    // multi-byte character (`\Ľ`, invalid JSON) must be refused, not sliced
    // inside the character (found by fuzzing).
    let e = chars.next().ok_or(())?;
    let rest = chars.as_str();
    let c = match e {
        '"' => '"',
        '\\' => '\\',
        '/' => '/',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'u' => {
            let (unit, rest) = hex4(rest)?;
            return match unit {
                0xd800..=0xdbff => {
                    let rest = rest.strip_prefix("\\u").ok_or(())?;
                    let (low, rest) = hex4(rest)?;
                    if !(0xdc00..=0xdfff).contains(&low) {
                        return Err(());
                    }
                    let code =
                        0x10000 + ((u32::from(unit) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                    Ok(Some((char::from_u32(code).ok_or(())?, rest)))
                }
                0xdc00..=0xdfff => Err(()),
                unit => Ok(Some((char::from_u32(u32::from(unit)).ok_or(())?, rest))),
            };
        }
        _ => return Err(()),
    };
    Ok(Some((c, rest)))
}

/// Four hex digits (exactly; no sign).
fn hex4(s: &str) -> Result<(u16, &str), ()> {
    let digits = s.as_bytes().get(..4).ok_or(())?;
    let mut v = 0u16;
    for &d in digits {
        let n = char::from(d).to_digit(16).ok_or(())?;
        v = (v << 4) | n as u16;
    }
    Ok((v, &s[4..]))
}

/// Compares a JSON string body (escaped) with a plain string.
pub(crate) fn unescaped_eq(raw: &str, plain: &str) -> bool {
    if !raw.contains('\\') {
        return raw == plain;
    }
    let mut rest = raw;
    let mut expect = plain.chars();
    loop {
        match (next_char(rest), expect.next()) {
            (Ok(Some((c, next))), Some(e)) if c == e => rest = next,
            (Ok(None), None) => return true,
            _ => return false,
        }
    }
}

/// A JSON string body borrowed from the input, not unescaped.
struct RawStr<'a>(&'a str);

impl<'de> Deserialize<'de> for RawStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawStr(v))
            }
        }
        // Without an unescape buffer serde-json-core hands out the raw body.
        deserializer.deserialize_str(V)
    }
}

/// What the header object held of the four keys.
#[derive(Default)]
struct Found<'a> {
    byteorder: Option<&'a str>,
    content_type: Option<&'a str>,
    content_encoding: Option<&'a str>,
    content_length: Option<u64>,
}

impl<'de> Deserialize<'de> for Found<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Found<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found = Found::default();
                while let Some(RawStr(key)) = map.next_key()? {
                    if unescaped_eq(key, KEYS[0]) {
                        found.byteorder = Some(map.next_value::<RawStr<'de>>()?.0);
                    } else if unescaped_eq(key, KEYS[1]) {
                        found.content_type = Some(map.next_value::<RawStr<'de>>()?.0);
                    } else if unescaped_eq(key, KEYS[2]) {
                        found.content_encoding = Some(map.next_value::<RawStr<'de>>()?.0);
                    } else if unescaped_eq(key, KEYS[3]) {
                        found.content_length = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testkit::{
        cuts, frames, outs_all_ways, run_all_ways, run_chunked, settled, Out,
    };
    use proptest::prelude::*;
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    use crate::testutil::unhex;

    /// WIRE.md §4: the `morpheus` search request (checked against Python).
    const MORPHEUS: &str = "0067 7b22627974656f72646572223a20226c6974746c65222c2022636f6e74656e742d74797065223a2022746578742f6a736f6e222c2022636f6e74656e742d656e636f64696e67223a20227574662d38222c2022636f6e74656e742d6c656e677468223a2034317d 7b22616374696f6e223a2022736561726368222c202276616c7565223a20226d6f727068657573227d";
    /// WIRE.md §4: the response, content-length 43 (raw UTF-8 rabbit).
    const RABBIT: &str = "00677b22627974656f72646572223a20226c6974746c65222c2022636f6e74656e742d74797065223a2022746578742f6a736f6e222c2022636f6e74656e742d656e636f64696e67223a20227574662d38222c2022636f6e74656e742d6c656e677468223a2034337d7b22726573756c74223a2022466f6c6c6f7720746865207768697465207261626269742e20f09f90b0227d";

    /// A message with `header` as its JSON and `content`.
    fn message(header: &str, content: &[u8]) -> Vec<u8> {
        let mut m = (header.len() as u16).to_be_bytes().to_vec();
        m.extend_from_slice(header.as_bytes());
        m.extend_from_slice(content);
        m
    }

    fn header_json(content_length: usize) -> String {
        format!(
            r#"{{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": {content_length}}}"#
        )
    }

    #[test]
    fn golden_request_and_response() {
        let request = unhex(MORPHEUS);
        let response = unhex(RABBIT);
        let mut input = request.clone();
        input.extend_from_slice(&response);
        input.extend_from_slice(b"\x00");
        let run = run_all_ways(&JsonHeader::new(), &input);
        assert_eq!(frames(&run), [request.clone(), response.clone()]);
        assert_eq!(run.leftover, b"\x00");
        let fields = parse_header(&request[2..105]).unwrap();
        assert_eq!(
            fields,
            RawFields {
                byteorder: "little",
                content_type: "text/json",
                content_encoding: "utf-8",
                content_length: 41
            }
        );
        let (fields, start) = split_message(&response).unwrap();
        assert_eq!(fields.content_length, 43);
        assert_eq!(
            core::str::from_utf8(&response[start..]).unwrap(),
            "{\"result\": \"Follow the white rabbit. \u{1f430}\"}"
        );
        // Encoding validates and adds nothing.
        let mut out = vec![0xa5; request.len()];
        assert_eq!(
            JsonHeader::new().encode(&request, &mut out),
            Ok(request.len())
        );
        assert_eq!(out, request);
    }

    #[test]
    fn header_parsed_once_then_content_awaited() {
        let msg = message(&header_json(5), b"hello");
        let mut f = JsonHeader::new();
        assert_eq!(
            f.decode(&msg[..1]).unwrap(),
            Decode::Incomplete { need: Some(2) }
        );
        let content_start = msg.len() - 5;
        assert_eq!(
            f.decode(&msg[..content_start - 1]).unwrap(),
            Decode::Incomplete {
                need: Some(content_start)
            }
        );
        assert_eq!(
            f.decode(&msg[..content_start]).unwrap(),
            Decode::Incomplete {
                need: Some(msg.len())
            }
        );
        assert_eq!(f.pending, Some(msg.len()));
        // The cached length is used: garbage where the header was no longer matters.
        let mut tampered = msg.clone();
        tampered[2] = b'!';
        assert_eq!(
            f.decode(&tampered).unwrap(),
            Decode::Frame {
                len: msg.len(),
                payload: 0..msg.len()
            }
        );
        assert_eq!(f.pending, None);
        assert_eq!(f.decode(&tampered), Err(FrameError::JsonHeaderSyntax));
        f.reset();
        assert_eq!(f.pending, None);
    }

    #[test]
    fn extra_keys_any_order_whitespace_and_escapes() {
        let header = r#" { "x-extra": [1, {"a": [true, null]}, "s\"}"], "content-length" : 3,
            "content-encoding": "utf-\u0038", "content\u002dtype": "text\/json",
            "byteorder": "b\u00efg \ud83d\udc30\n" } "#;
        let msg = message(header, b"abc");
        let run = run_all_ways(&JsonHeader::new(), &msg);
        assert_eq!(frames(&run), [msg]);
        let fields = parse_header(header.as_bytes()).unwrap();
        assert_eq!(fields.content_type, r"text\/json");
        assert!(unescaped_eq(fields.content_type, "text/json"));
        assert!(unescaped_eq(fields.content_encoding, "utf-8"));
        assert!(unescaped_eq(fields.byteorder, "b\u{ef}g \u{1f430}\n"));
        assert!(!unescaped_eq(fields.byteorder, "b\u{ef}g \u{1f430}"));
        // A repeated key: the last one wins, as in Python.
        let header = r#"{"byteorder": "a", "content-type": "b", "content-encoding": "c", "content-length": 9, "content-length": 1}"#;
        assert_eq!(parse_header(header.as_bytes()).unwrap().content_length, 1);
    }

    #[test]
    fn missing_keys() {
        for (i, key) in KEYS.iter().enumerate() {
            let mut parts: Vec<String> = vec![
                r#""byteorder": "big""#.into(),
                r#""content-type": "x""#.into(),
                r#""content-encoding": "binary""#.into(),
                r#""content-length": 0"#.into(),
            ];
            parts.remove(i);
            let header = format!("{{{}}}", parts.join(", "));
            assert_eq!(
                outs_all_ways(&JsonHeader::new(), &message(&header, b"")),
                [Out::Error(FrameError::JsonHeaderMissingKey { key })]
            );
        }
        assert_eq!(
            parse_header(b"{}"),
            Err(FrameError::JsonHeaderMissingKey { key: "byteorder" })
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[&str] = &[
            "",
            "[]",
            "\"str\"",
            "{",
            r#"{"byteorder": "little",}"#,
            r#"{"byteorder": "little"} x"#,
            // Wrong types.
            r#"{"byteorder": null, "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"byteorder": 1, "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": "1"}"#,
            r#"{"byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": -1}"#,
            r#"{"byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": 1.5}"#,
            r#"{"byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": 18446744073709551616}"#,
            // Bad escapes, lone surrogates, raw control characters.
            r#"{"byteorder": "\x", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"byteorder": "\u12", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"byteorder": "\u+123", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"byteorder": "\ud83d", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"byteorder": "\ud83d\u0041", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"byteorder": "\udc30", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            // An escape of a multi-byte character (found by fuzzing: it used
            // to slice inside the character and panic).
            r#"{"byteorder": "\Ľ", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            r#"{"x\Ľ0": 0, "byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": 1}"#,
            "{\"byteorder\": \"a\tb\", \"content-type\": \"a\", \"content-encoding\": \"b\", \"content-length\": 1}",
        ];
        for header in cases {
            assert_eq!(
                parse_header(header.as_bytes()),
                Err(FrameError::JsonHeaderSyntax),
                "{header}"
            );
        }
        assert_eq!(
            outs_all_ways(&JsonHeader::new(), &message("{]", b"")),
            [Out::Error(FrameError::JsonHeaderSyntax)]
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        let deep = format!(
            r#"{{"x": {}{}, "byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": 0}}"#,
            "[".repeat(30_000),
            "]".repeat(30_000)
        );
        assert_eq!(
            parse_header(deep.as_bytes()),
            Err(FrameError::JsonHeaderSyntax)
        );
        let ok = format!(
            r#"{{"x": {}{}, "byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": 0}}"#,
            "[".repeat(JsonHeader::MAX_NESTING - 1),
            "]".repeat(JsonHeader::MAX_NESTING - 1)
        );
        assert!(parse_header(ok.as_bytes()).is_ok());
        // Brackets inside strings do not count.
        let quoted = format!(
            r#"{{"x": "{}", "byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": 0}}"#,
            "[".repeat(100)
        );
        assert!(parse_header(quoted.as_bytes()).is_ok());
    }

    #[test]
    fn invalid_utf8() {
        let mut header = header_json(0).into_bytes();
        header[17] = 0xff; // inside "little"
        let mut msg = (header.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(&header);
        assert_eq!(
            outs_all_ways(&JsonHeader::new(), &msg),
            [Out::Error(FrameError::JsonHeaderUtf8 { valid_up_to: 17 })]
        );
    }

    #[test]
    fn limits() {
        let msg = message(&header_json(100), &[b'x'; 100]);
        let header_len = msg.len() - 102;
        // Header limit, from the prefix alone.
        let f = JsonHeader::new().with_max_header_len(header_len - 1);
        let mut g = f.clone();
        assert_eq!(
            g.decode(&msg[..2]),
            Err(FrameError::JsonHeaderTooLong {
                len: header_len,
                max: header_len - 1
            })
        );
        assert_eq!(
            f.header(&msg),
            Err(EncodeError::PayloadTooLong {
                len: header_len,
                max: header_len - 1
            })
        );
        // Content limit, as soon as the header is parsed.
        let f = JsonHeader::new().with_max_content_len(99);
        let mut g = f.clone();
        assert_eq!(
            g.decode(&msg[..2 + header_len]),
            Err(FrameError::ContentTooLong { len: 100, max: 99 })
        );
        assert_eq!(
            outs_all_ways(&f, &msg),
            [Out::Error(FrameError::ContentTooLong { len: 100, max: 99 })]
        );
        assert_eq!(
            f.header(&msg),
            Err(EncodeError::PayloadTooLong { len: 100, max: 99 })
        );
        // At the limits is fine.
        let f = JsonHeader::new()
            .with_max_content_len(100)
            .with_max_header_len(header_len);
        assert_eq!(f.max_frame_len(), msg.len());
        assert_eq!(frames(&run_all_ways(&f, &msg)), [msg]);
        // A content-length no usize can hold.
        let huge = message(
            r#"{"byteorder": "l", "content-type": "a", "content-encoding": "b", "content-length": 18446744073709551615}"#,
            b"",
        );
        assert_eq!(
            outs_all_ways(&JsonHeader::new(), &huge),
            [Out::Error(FrameError::ContentTooLong {
                len: u64::MAX,
                max: JsonHeader::DEFAULT_MAX_CONTENT_LEN
            })]
        );
        assert_eq!(
            JsonHeader::new()
                .with_max_header_len(1 << 20)
                .max_header_len(),
            65535
        );
    }

    #[test]
    fn encode_rejects_anything_but_one_whole_message() {
        let msg = message(&header_json(3), b"abc");
        let f = JsonHeader::new();
        let mut out = [0u8; 256];
        assert_eq!(f.encode(&msg, &mut out), Ok(msg.len()));
        assert_eq!(
            f.encode(&msg[..msg.len() - 1], &mut out),
            Err(EncodeError::Malformed)
        );
        let mut longer = msg.clone();
        longer.push(b'!');
        assert_eq!(f.encode(&longer, &mut out), Err(EncodeError::Malformed));
        assert_eq!(f.encode(b"", &mut out), Err(EncodeError::Malformed));
        assert_eq!(
            f.encode(&message("{}", b""), &mut out),
            Err(EncodeError::Malformed)
        );
        assert_eq!(
            f.encode(&msg, &mut out[..4]),
            Err(EncodeError::BufferTooSmall {
                required: msg.len()
            })
        );
    }

    #[test]
    fn split_message_reports_sizes() {
        let msg = message(&header_json(3), b"abc");
        assert_eq!(
            split_message(b"\x00"),
            Err(FrameError::JsonMessageLength {
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            split_message(&msg[..10]),
            Err(FrameError::JsonMessageLength {
                expected: (msg.len() - 3) as u64,
                actual: 10
            })
        );
        assert_eq!(
            split_message(&msg[..msg.len() - 1]),
            Err(FrameError::JsonMessageLength {
                expected: msg.len() as u64,
                actual: msg.len() - 1
            })
        );
        assert_eq!(split_message(&msg).unwrap().1, msg.len() - 3);
    }

    proptest! {
        #[test]
        fn messages_in_any_chunking(
            contents in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..4),
            c in cuts(40),
        ) {
            let msgs: Vec<Vec<u8>> = contents.iter().map(|b| message(&header_json(b.len()), b)).collect();
            let input = msgs.concat();
            let run = run_chunked(&mut JsonHeader::new(), &input, &c);
            prop_assert_eq!(frames(&run), msgs);
        }

        #[test]
        fn arbitrary_bytes_split_invariant(
            input in proptest::collection::vec(any::<u8>(), 0..200),
            c in cuts(40),
        ) {
            // A small header length so the JSON parser sees the junk.
            let mut input = input;
            if let Some(b) = input.first_mut() {
                *b = 0;
            }
            let whole = settled(run_chunked(&mut JsonHeader::new(), &input, &[]));
            prop_assert_eq!(&settled(run_chunked(&mut JsonHeader::new(), &input, &c)), &whole);
        }

        #[test]
        fn header_junk_never_panics(junk in "[{}\\[\\]\":,\\\\ a-z0-9u-]{0,80}") {
            let _ = parse_header(junk.as_bytes());
        }
    }
}
