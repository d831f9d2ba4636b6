//! The socket tutorial's application message (WIRE.md §4), typed: the four
//! header fields and the content of a frame from
//! [`JsonHeader`](crate::framing::JsonHeader), and the encoder that writes
//! the header byte for byte as the Python original does:
//!
//! ```text
//! json.dumps({"byteorder": B, "content-type": T, "content-encoding": E,
//!             "content-length": len(content)}, ensure_ascii=False).encode("utf-8")
//! ```
//!
//! (keys in that order, `", "` and `": "` separators, `"`, `\`, `\n`, `\r`,
//! `\t`, `\b`, `\f` escaped with a backslash, other control characters as
//! `\u00XX`, everything else, non-ASCII included, as raw UTF-8).
//!
//! Parsing never allocates: header strings are [`JsonStr`]s borrowed from the
//! frame in their JSON form, decoded on demand (a string without escapes is
//! a plain `&str`, see [`JsonStr::as_str`]).
//!
//! ```
//! use framewire::message::json_header::{encode_message, Message, TEXT_JSON};
//! let mut buf = [0u8; 256];
//! let content = br#"{"action": "search", "value": "morpheus"}"#;
//! let n = encode_message(TEXT_JSON, "utf-8", "little", content, &mut buf).unwrap();
//! let msg = Message::parse(&buf[..n]).unwrap();
//! assert_eq!(msg.header.content_type, "text/json");
//! assert!(msg.header.is_text_json());
//! assert_eq!(msg.header.content_length, 41);
//! assert_eq!(msg.content, content);
//! ```

use crate::framing::json_header::{next_char, split_message, KEYS};
use crate::framing::{EncodeError, FrameError};
use crate::varint::BufferTooSmall;
use core::fmt;

/// The content type whose content is JSON text (compared with `==` by the
/// original; anything else is binary).
pub const TEXT_JSON: &str = "text/json";

/// The largest header the `u16` prefix can announce.
pub const MAX_HEADER_LEN: usize = u16::MAX as usize;

/// A string from a JSON header, borrowed in its JSON-escaped form (without
/// the quotes). Its escapes were checked when the header was parsed, so every
/// method here succeeds. Compares with `&str` by its decoded value.
#[derive(Clone, Copy)]
pub struct JsonStr<'a> {
    raw: &'a str,
}

impl<'a> JsonStr<'a> {
    /// The string as written in the JSON text, escapes and all.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded string, if it has no escapes (then it is the JSON text
    /// itself). Python's `ensure_ascii=False` only escapes `"`, `\` and
    /// control characters, so header values normally have none.
    pub fn as_str(&self) -> Option<&'a str> {
        (!self.raw.contains('\\')).then_some(self.raw)
    }

    /// The decoded characters.
    pub fn chars(&self) -> JsonChars<'a> {
        JsonChars { rest: self.raw }
    }

    /// The length of the decoded string in UTF-8 bytes.
    pub fn unescaped_len(&self) -> usize {
        match self.as_str() {
            Some(s) => s.len(),
            None => self.chars().map(char::len_utf8).sum(),
        }
    }

    /// Decodes the string into `out`, returning it as a `&str` there.
    pub fn unescape_into<'b>(&self, out: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
        let required = self.unescaped_len();
        let Some(out) = out.get_mut(..required) else {
            return Err(BufferTooSmall { required });
        };
        let mut at = 0;
        for c in self.chars() {
            at += c.encode_utf8(&mut out[at..]).len();
        }
        // Whole chars were written into exactly `required` bytes.
        Ok(core::str::from_utf8(out).unwrap_or_default())
    }

    /// The decoded string, borrowed when it has no escapes.
    #[cfg(feature = "alloc")]
    pub fn to_cow(&self) -> alloc::borrow::Cow<'a, str> {
        match self.as_str() {
            Some(s) => alloc::borrow::Cow::Borrowed(s),
            None => alloc::borrow::Cow::Owned(self.chars().collect()),
        }
    }
}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        crate::framing::json_header::unescaped_eq(self.raw, other)
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq for JsonStr<'_> {
    fn eq(&self, other: &JsonStr<'_>) -> bool {
        self.chars().eq(other.chars())
    }
}

impl Eq for JsonStr<'_> {}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => f.write_str(s),
            None => self.chars().try_for_each(|c| fmt::Write::write_char(f, c)),
        }
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.chars() {
            for e in c.escape_debug() {
                fmt::Write::write_char(f, e)?;
            }
        }
        f.write_str("\"")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for JsonStr<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.raw);
    }
}

/// The decoded characters of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct JsonChars<'a> {
    rest: &'a str,
}

impl Iterator for JsonChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        // The escapes were validated when the header was parsed; an error
        // here cannot happen and would end the string.
        let (c, rest) = next_char(self.rest).ok().flatten()?;
        self.rest = rest;
        Some(c)
    }
}

/// The four header fields of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JsonHeaderFields<'a> {
    /// `byteorder`: the sender's `sys.byteorder` (`"little"` or `"big"`);
    /// never used by the original.
    pub byteorder: JsonStr<'a>,
    /// `content-type`: [`TEXT_JSON`] for JSON content, anything else is binary.
    pub content_type: JsonStr<'a>,
    /// `content-encoding`: the Python codec of JSON content (`"utf-8"`), or
    /// `"binary"`.
    pub content_encoding: JsonStr<'a>,
    /// `content-length`: bytes of content after the header.
    pub content_length: u64,
}

impl JsonHeaderFields<'_> {
    /// Whether the content is JSON text (`content-type == "text/json"`,
    /// compared exactly as the original does).
    pub fn is_text_json(&self) -> bool {
        self.content_type == TEXT_JSON
    }
}

/// One message: its header fields and its content, borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message<'a> {
    /// The header.
    pub header: JsonHeaderFields<'a>,
    /// The content, exactly `content-length` bytes.
    pub content: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses one whole message: `frame` is a payload delivered by
    /// [`JsonHeader`](crate::framing::JsonHeader) (prefix, header, content).
    ///
    /// The framing's limits are not applied again here (the bytes are
    /// already in memory); its header checks are. A slice whose size
    /// disagrees with its prefix and `content-length` is
    /// [`FrameError::JsonMessageLength`].
    pub fn parse(frame: &'a [u8]) -> Result<Message<'a>, FrameError> {
        let (raw, content_start) = split_message(frame)?;
        Ok(Message {
            header: JsonHeaderFields {
                byteorder: JsonStr { raw: raw.byteorder },
                content_type: JsonStr {
                    raw: raw.content_type,
                },
                content_encoding: JsonStr {
                    raw: raw.content_encoding,
                },
                content_length: raw.content_length,
            },
            content: &frame[content_start..],
        })
    }
}

/// Bytes `s` takes as a JSON string body, escaped as Python's `json.dumps`
/// with `ensure_ascii=False` does.
fn escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

/// Decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// The length of the JSON header (without the prefix) for these fields.
pub fn header_len(
    content_type: &str,
    content_encoding: &str,
    byteorder: &str,
    content_len: usize,
) -> usize {
    // {"byteorder": "B", "content-type": "T", "content-encoding": "E", "content-length": N}
    let keys: usize = KEYS.iter().map(|k| k.len() + 2).sum();
    let punctuation = 2 + 3 * 2 + 4 * 2 + 3 * 2; // braces, ", " x3, ": " x4, quotes of 3 values
    keys + punctuation
        + escaped_len(byteorder)
        + escaped_len(content_type)
        + escaped_len(content_encoding)
        + decimal_len(content_len as u64)
}

/// The size of the whole message (prefix, header, content).
///
/// Errors with [`EncodeError::PayloadTooLong`] (`len` the header's length,
/// `max` 65535) when the header does not fit the `u16` prefix.
pub fn encoded_len(
    content_type: &str,
    content_encoding: &str,
    byteorder: &str,
    content_len: usize,
) -> Result<usize, EncodeError> {
    let header = header_len(content_type, content_encoding, byteorder, content_len);
    if header > MAX_HEADER_LEN {
        return Err(EncodeError::PayloadTooLong {
            len: header,
            max: MAX_HEADER_LEN,
        });
    }
    (2 + header)
        .checked_add(content_len)
        .ok_or(EncodeError::PayloadTooLong {
            len: content_len,
            max: usize::MAX - 2 - header,
        })
}

/// A cursor over the caller's buffer (which is known to be big enough).
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    fn put_json_str(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.put(b"\"");
        let bytes = s.as_bytes();
        let mut run = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let short = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x08 => b'b',
                0x0c => b'f',
                0..=0x1f => 0,
                _ => continue,
            };
            self.put(&bytes[run..i]);
            run = i + 1;
            if short == 0 {
                self.put(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            } else {
                self.put(&[b'\\', short]);
            }
        }
        self.put(&bytes[run..]);
        self.put(b"\"");
    }

    fn put_decimal(&mut self, n: u64) {
        self.put(crate::decimal::digits(
            n,
            &mut [0; crate::decimal::MAX_DIGITS],
        ));
    }
}

/// Writes a whole message into `out`: the `u16` big-endian header length,
/// the header JSON exactly as the Python original's `json.dumps(...,
/// ensure_ascii=False)`, and `content`. Returns the message's length.
///
/// Errors: [`EncodeError::PayloadTooLong`] if the header is over 65535 bytes
/// (`len` is the header's length), [`EncodeError::BufferTooSmall`] with the
/// whole size. Nothing is written on error.
pub fn encode_message(
    content_type: &str,
    content_encoding: &str,
    byteorder: &str,
    content: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let required = encoded_len(content_type, content_encoding, byteorder, content.len())?;
    let Some(buf) = out.get_mut(..required) else {
        return Err(EncodeError::BufferTooSmall { required });
    };
    let header_len = required - 2 - content.len();
    let mut w = Out { buf, at: 0 };
    // header_len <= MAX_HEADER_LEN, checked by encoded_len.
    w.put(&(header_len as u16).to_be_bytes());
    let values = [byteorder, content_type, content_encoding];
    w.put(b"{");
    for (key, value) in KEYS.iter().zip(values) {
        w.put_json_str(key);
        w.put(b": ");
        w.put_json_str(value);
        w.put(b", ");
    }
    w.put_json_str(KEYS[3]);
    w.put(b": ");
    w.put_decimal(content.len() as u64);
    w.put(b"}");
    w.put(content);
    debug_assert_eq!(w.at, required);
    Ok(required)
}

/// [`encode_message`] into a new `Vec`.
#[cfg(feature = "alloc")]
pub fn encode_message_vec(
    content_type: &str,
    content_encoding: &str,
    byteorder: &str,
    content: &[u8],
) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let len = encoded_len(content_type, content_encoding, byteorder, content.len())?;
    let mut out = alloc::vec![0; len];
    encode_message(content_type, content_encoding, byteorder, content, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{Framing, JsonHeader};
    use proptest::prelude::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    use crate::testutil::unhex;

    /// WIRE.md §4: the `morpheus` search request.
    const MORPHEUS: &str = "0067 7b22627974656f72646572223a20226c6974746c65222c2022636f6e74656e742d74797065223a2022746578742f6a736f6e222c2022636f6e74656e742d656e636f64696e67223a20227574662d38222c2022636f6e74656e742d6c656e677468223a2034317d 7b22616374696f6e223a2022736561726368222c202276616c7565223a20226d6f727068657573227d";
    /// WIRE.md §4: the response, content-length 43.
    const RABBIT: &str = "00677b22627974656f72646572223a20226c6974746c65222c2022636f6e74656e742d74797065223a2022746578742f6a736f6e222c2022636f6e74656e742d656e636f64696e67223a20227574662d38222c2022636f6e74656e742d6c656e677468223a2034337d7b22726573756c74223a2022466f6c6c6f7720746865207768697465207261626269742e20f09f90b0227d";
    /// Python 3.11: the tutorial's binary request (`"big"`, `b"searchmorpheus"`).
    const BINARY: &str = "007c7b22627974656f72646572223a2022626967222c2022636f6e74656e742d74797065223a202262696e6172792f637573746f6d2d636c69656e742d62696e6172792d74797065222c2022636f6e74656e742d656e636f64696e67223a202262696e617279222c2022636f6e74656e742d6c656e677468223a2031347d7365617263686d6f727068657573";
    /// Python 3.11 `json.dumps` escaping with `ensure_ascii=False`:
    /// byteorder `"\x00\x01\x1f\x7f"`, content-type `'a"b\\c'`,
    /// content-encoding `"tab\there\nnl\rcr\x08bs\x0cff"`, no content.
    const ESCAPES: &str = "00857b22627974656f72646572223a20225c75303030305c75303030315c75303031667f222c2022636f6e74656e742d74797065223a2022615c22625c5c63222c2022636f6e74656e742d656e636f64696e67223a20227461625c74686572655c6e6e6c5c7263725c6262735c666666222c2022636f6e74656e742d6c656e677468223a20307d";
    /// Python 3.11: content-type `"é🐰\u2028\u2029/"` (raw UTF-8, `/` not
    /// escaped), empty content-encoding, byteorder `"big"`, content `00 ff`.
    const UNICODE: &str = "00627b22627974656f72646572223a2022626967222c2022636f6e74656e742d74797065223a2022c3a9f09f90b0e280a8e280a92f222c2022636f6e74656e742d656e636f64696e67223a2022222c2022636f6e74656e742d6c656e677468223a20327d00ff";

    fn encode_vec(ct: &str, ce: &str, bo: &str, content: &[u8]) -> Vec<u8> {
        let n = encoded_len(ct, ce, bo, content.len()).unwrap();
        let mut out = vec![0xa5; n + 1];
        assert_eq!(encode_message(ct, ce, bo, content, &mut out), Ok(n));
        assert_eq!(out[n], 0xa5, "wrote past the end");
        out.truncate(n);
        out
    }

    #[test]
    fn golden_request_and_response() {
        let request = br#"{"action": "search", "value": "morpheus"}"#;
        assert_eq!(
            encode_vec(TEXT_JSON, "utf-8", "little", request),
            unhex(MORPHEUS)
        );
        let response = "{\"result\": \"Follow the white rabbit. \u{1f430}\"}".as_bytes();
        assert_eq!(response.len(), 43);
        assert_eq!(
            encode_vec(TEXT_JSON, "utf-8", "little", response),
            unhex(RABBIT)
        );
        assert_eq!(
            encode_vec(
                "binary/custom-client-binary-type",
                "binary",
                "big",
                b"searchmorpheus"
            ),
            unhex(BINARY)
        );
        let frame = unhex(MORPHEUS);
        let msg = Message::parse(&frame).unwrap();
        assert_eq!(msg.header.byteorder, "little");
        assert_eq!(msg.header.content_type, TEXT_JSON);
        assert_eq!(msg.header.content_encoding.as_str(), Some("utf-8"));
        assert_eq!(msg.header.content_length, 41);
        assert_eq!(msg.content, request);
        let frame = unhex(BINARY);
        let msg = Message::parse(&frame).unwrap();
        assert!(!msg.header.is_text_json());
        assert_eq!(msg.content, b"searchmorpheus");
    }

    #[test]
    fn escaping_matches_python() {
        let ct = "a\"b\\c";
        let ce = "tab\there\nnl\rcr\u{8}bs\u{c}ff";
        let bo = "\u{0}\u{1}\u{1f}\u{7f}";
        let frame = encode_vec(ct, ce, bo, b"");
        assert_eq!(frame, unhex(ESCAPES));
        let msg = Message::parse(&frame).unwrap();
        assert_eq!(msg.header.content_type, ct);
        assert_eq!(msg.header.content_encoding, ce);
        assert_eq!(msg.header.byteorder, bo);
        assert_eq!(msg.header.byteorder.as_str(), None);
        assert_eq!(msg.header.content_type.raw(), r#"a\"b\\c"#);

        let ct = "\u{e9}\u{1f430}\u{2028}\u{2029}/";
        let frame = encode_vec(ct, "", "big", b"\x00\xff");
        assert_eq!(frame, unhex(UNICODE));
        let msg = Message::parse(&frame).unwrap();
        assert_eq!(msg.header.content_type.as_str(), Some(ct));
        assert_eq!(msg.header.content_encoding, "");
        assert_eq!(msg.content, b"\x00\xff");
    }

    #[test]
    fn escaped_strings_decode() {
        // What Python's default ensure_ascii=True would send for "é🐰".
        let header = r#"{"byteorder": "\u00e9\ud83d\udc30", "content-type": "text\/json", "content-encoding": "utf-8", "content-length": 0}"#;
        let mut frame = (header.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(header.as_bytes());
        let msg = Message::parse(&frame).unwrap();
        let bo = msg.header.byteorder;
        assert_eq!(bo, "\u{e9}\u{1f430}");
        assert_ne!(bo, "\u{e9}");
        assert_eq!(bo.unescaped_len(), 6);
        let mut scratch = [0u8; 6];
        assert_eq!(bo.unescape_into(&mut scratch), Ok("\u{e9}\u{1f430}"));
        assert_eq!(
            bo.unescape_into(&mut [0u8; 5]),
            Err(BufferTooSmall { required: 6 })
        );
        assert_eq!(std::format!("{bo}"), "\u{e9}\u{1f430}");
        assert_eq!(std::format!("{bo:?}"), "\"\u{e9}\u{1f430}\"");
        assert!(msg.header.is_text_json());
        // Equality between JsonStrs is by decoded value.
        let plain = unhex(MORPHEUS);
        let other = Message::parse(&plain).unwrap().header.content_type;
        assert_eq!(other.raw(), "text/json");
        assert_eq!(msg.header.content_type.raw(), r"text\/json");
        assert_eq!(msg.header.content_type, other);
        assert_ne!(msg.header.content_type, msg.header.content_encoding);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn to_cow_borrows_when_it_can() {
        let header = r#"{"byteorder": "\u00e9", "content-type": "t", "content-encoding": "utf-8", "content-length": 0}"#;
        let mut frame = (header.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(header.as_bytes());
        let msg = Message::parse(&frame).unwrap();
        assert!(matches!(
            msg.header.byteorder.to_cow(),
            std::borrow::Cow::Owned(s) if s == "\u{e9}"
        ));
        assert!(matches!(
            msg.header.content_encoding.to_cow(),
            std::borrow::Cow::Borrowed("utf-8")
        ));
        assert_eq!(
            encode_message_vec("t", "utf-8", "\u{e9}", b"").unwrap(),
            encode_vec("t", "utf-8", "\u{e9}", b"")
        );
    }

    #[test]
    fn parse_errors_are_typed() {
        let good = unhex(MORPHEUS);
        assert_eq!(
            Message::parse(&good[..good.len() - 1]),
            Err(FrameError::JsonMessageLength {
                expected: good.len() as u64,
                actual: good.len() - 1
            })
        );
        let mut trailing = good.clone();
        trailing.push(b'x');
        assert_eq!(
            Message::parse(&trailing),
            Err(FrameError::JsonMessageLength {
                expected: good.len() as u64,
                actual: good.len() + 1
            })
        );
        assert_eq!(
            Message::parse(b"\x00\x02{}"),
            Err(FrameError::JsonHeaderMissingKey { key: "byteorder" })
        );
        assert_eq!(
            Message::parse(b"\x00\x02{x"),
            Err(FrameError::JsonHeaderSyntax)
        );
        assert_eq!(
            Message::parse(b"\x00\x02{\xff"),
            Err(FrameError::JsonHeaderUtf8 { valid_up_to: 1 })
        );
    }

    #[test]
    fn encode_errors() {
        let mut small = [0u8; 10];
        let required = encoded_len(TEXT_JSON, "utf-8", "little", 41).unwrap();
        assert_eq!(required, 2 + 103 + 41);
        assert_eq!(
            encode_message(TEXT_JSON, "utf-8", "little", &[b'x'; 41], &mut small),
            Err(EncodeError::BufferTooSmall { required })
        );
        assert_eq!(small, [0; 10], "nothing written on error");
        // A header over 65535 bytes cannot be announced.
        let long = "x".repeat(MAX_HEADER_LEN);
        let header = header_len(&long, "", "", 0);
        assert!(header > MAX_HEADER_LEN);
        assert_eq!(
            encoded_len(&long, "", "", 0),
            Err(EncodeError::PayloadTooLong {
                len: header,
                max: MAX_HEADER_LEN
            })
        );
        // Exactly 65535 is fine.
        let fits = "x".repeat(MAX_HEADER_LEN - header_len("", "", "", 0));
        assert_eq!(header_len(&fits, "", "", 0), MAX_HEADER_LEN);
        let frame = encode_vec(&fits, "", "", b"");
        assert_eq!(frame[..2], [0xff, 0xff]);
        assert_eq!(
            Message::parse(&frame).unwrap().header.content_type,
            fits.as_str()
        );
    }

    /// `json.dumps(s, ensure_ascii=False).encode()` from Python 3.11 for
    /// random strings over control characters, `"`, `\\`, `/`, DEL, C1
    /// controls, U+2028, non-BMP.
    const PY_STRINGS: &[(&str, &str)] = &[
        (
            "\u{9}\u{19}\u{2028}\u{3}\u{4}",
            "225c745c7530303139e280a85c75303030335c753030303422",
        ),
        (
            "\u{6}\u{17}\u{80}\u{3} \u{d}\u{2}\u{5}",
            "225c75303030365c7530303137c2805c7530303033205c725c75303030325c753030303522",
        ),
        (
            "\u{1a}\u{4}\u{f}\u{5}/\u{1b}",
            "225c75303031615c75303030345c75303030665c75303030352f5c753030316222",
        ),
        ("", "2222"),
        (
            "\u{7}\u{e}\u{e9}\u{e9}\u{80}\u{3}\u{7f}\u{80}\u{19}",
            "225c75303030375c7530303065c3a9c3a9c2805c75303030337fc2805c753030313922",
        ),
        ("\u{2}/\u{8}", "225c75303030322f5c6222"),
        (
            "\u{1a}\u{9}\u{5c}\u{7}",
            "225c75303031615c745c5c5c753030303722",
        ),
        (
            "\u{13}/\u{1f430}\u{b}\u{6}\u{80}\u{7f}\u{e9}\u{c}",
            "225c75303031332ff09f90b05c75303030625c7530303036c2807fc3a95c6622",
        ),
        ("\u{6}/Z\u{4}\u{7f}", "225c75303030362f5a5c75303030347f22"),
        (
            "\u{d}\u{1f}\u{1f430}\u{5c}\u{1b}\u{14}\u{1d}\u{80}\u{1d}",
            "225c725c7530303166f09f90b05c5c5c75303031625c75303031345c7530303164c2805c753030316422",
        ),
        (
            "\u{13}\u{f}\u{b}a\u{f}",
            "225c75303031335c75303030665c7530303062615c753030306622",
        ),
        ("\u{7f}", "227f22"),
        ("q\"uote\u{22}", "22715c22756f74655c2222"),
    ];

    #[test]
    fn string_escaping_matches_python() {
        for &(s, hex) in PY_STRINGS {
            let expected = unhex(hex);
            let mut buf = [0u8; 128];
            let mut w = Out {
                buf: &mut buf,
                at: 0,
            };
            w.put_json_str(s);
            let n = w.at;
            assert_eq!(&buf[..n], &expected[..], "{s:?}");
            assert_eq!(escaped_len(s) + 2, n);
            let body = core::str::from_utf8(&buf[1..n - 1]).unwrap();
            assert_eq!(JsonStr { raw: body }, s);
        }
    }

    #[test]
    fn decimal_lengths() {
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(decimal_len(n), std::format!("{n}").len());
        }
        let mut buf = [0u8; 20];
        let mut w = Out {
            buf: &mut buf,
            at: 0,
        };
        w.put_decimal(u64::MAX);
        assert_eq!(&buf[..], b"18446744073709551615");
    }

    proptest! {
        #[test]
        fn round_trip_through_the_framing(
            ct in "\\PC*|[\\x00-\\x1f\"\\\\/]{0,8}",
            ce in any::<String>(),
            bo in "little|big|[\\x00-\\x7f]{0,4}",
            content in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let frame = encode_vec(&ct, &ce, &bo, &content);
            let len = frame.len();
            // The framing accepts it as one whole message.
            prop_assert_eq!(
                JsonHeader::new().decode(&frame).unwrap(),
                crate::framing::Decode::Frame { len, payload: 0..len }
            );
            prop_assert!(JsonHeader::new().header(&frame).is_ok());
            let msg = Message::parse(&frame).unwrap();
            prop_assert_eq!(msg.header.content_type.chars().collect::<String>(), ct.as_str());
            prop_assert_eq!(msg.header.content_encoding.chars().collect::<String>(), ce.as_str());
            prop_assert_eq!(msg.header.byteorder.chars().collect::<String>(), bo.as_str());
            prop_assert_eq!(msg.header.content_length, content.len() as u64);
            prop_assert_eq!(msg.content, &content[..]);
            prop_assert_eq!(header_len(&ct, &ce, &bo, content.len()) + 2 + content.len(), len);
        }
    }
}
