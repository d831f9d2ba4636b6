//! socktools' JSON messages: `json.dumps([msg_type, msg_data])`, byte for byte (WIRE.md §3).
//!
//! socktools 0.2 (`JSONParseMixin`) sends every message as the JSON text of a two-element
//! list `[msg_type, msg_data]`, produced by Python's `json.dumps` with its defaults, inside a
//! `uint32be(len)` frame (the framing layer's length-prefixed format). This module produces
//! and parses the JSON body.
//!
//! * [`encode`] / [`encode_into`]: `[msg_type, msg_data]` from any two serde values, bytes
//!   identical to Python's `json.dumps([msg_type, msg_data])`.
//! * [`decode`] / [`decode_as`]: back into [`serde_json::Value`]s or typed values, with
//!   typed errors for bad UTF-8, bad JSON (with line and column) and a body that is not a
//!   two-element array.
//! * [`to_vec`] / [`Serializer`]: Python's `json.dumps` of any serde value, with
//!   `ensure_ascii` on (the default, as socktools uses it) or off.
//!
//! # Python's `json.dumps` defaults, reproduced
//!
//! * Separators `", "` between items and `": "` between key and value; `[]` and `{}` empty.
//! * `ensure_ascii=True`: only printable ASCII (0x20–0x7e) is written as is; `"` and `\` as
//!   `\"` and `\\`; `\b \f \n \r \t` as those escapes; every other character as `\u00e9`
//!   (lower-case hex), characters above U+FFFF as a surrogate pair (`\ud83d\udc30`).
//!   With `ensure_ascii=False` non-ASCII (and DEL) is raw UTF-8 and only `"`, `\` and
//!   control characters are escaped.
//! * Floats as Python's `repr(float)`: the shortest digits that round-trip, in fixed notation
//!   for 1e-4 ≤ |x| < 1e16 with at least one decimal (`1.0`, `2.5`, `0.0001`,
//!   `1000000000000000.0`), else in exponent notation with a sign and at least two exponent
//!   digits (`1e+16`, `1e-05`, `1.5e+300`, `5e-324`); `-0.0` keeps its sign. NaN and the
//!   infinities as `NaN`, `Infinity`, `-Infinity` (Python's default `allow_nan=True`; not
//!   standard JSON). An `f32` is printed as the `f64` it converts to exactly, which is what
//!   Python would print for that value (`0.1f32` → `0.10000000149011612`).
//! * Integers of any Rust width exactly (`i128`/`u128` included), like Python's `int`.
//! * Keys in insertion order (structs in declaration order, `serde_json::Map` in insertion
//!   order thanks to `preserve_order`). Non-string keys are converted like Python does:
//!   integers and floats to their text, `bool` to `"true"`/`"false"`, `()`/`None` to `"null"`.
//!
//! Rust-only shapes follow serde_json's conventions (Python has no equivalent): byte slices
//! (`serialize_bytes`) become an array of numbers, a unit enum variant its name as a string,
//! other enum variants `{"Variant": content}`.
//!
//! # Decoding
//!
//! Decoding uses `serde_json`, which is stricter than Python's `json.loads`: `NaN`,
//! `Infinity` and `-Infinity` (which Python writes for non-finite floats) are rejected as a
//! syntax error, and integers beyond the 64-bit range become `f64` in a [`serde_json::Value`]
//! (Python keeps them exact). Floats are parsed exactly (serde_json's `float_roundtrip`
//! feature, enabled by `json`), so decoding Python's text and encoding it again gives the same
//! bytes. Nesting is limited to 128 levels (serde_json's recursion limit), the body length to
//! [`DEFAULT_MAX_MESSAGE_LEN`] unless [`decode_with_max`] is used.
//!
//! This module uses its own serde serializer rather than a `serde_json::ser::Formatter`:
//! serde_json only exports its `Serializer` and `Formatter` with its `std` feature, and its
//! serializer turns non-finite floats into `null` before any formatter sees them.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt::{self, Write as _};

use serde::de::{self, Deserialize, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{self, Serialize};
use serde_json::Value;

/// Default maximum length of a message body accepted by [`decode`] and [`decode_as`]
/// (16 MiB).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

/// The kind of JSON value found where the `[msg_type, msg_data]` array was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonKind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array (of the wrong length).
    Array,
    /// An object.
    Object,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        })
    }
}

/// What went wrong encoding or decoding a socktools JSON message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is not valid UTF-8.
    BadUtf8 {
        /// Length of the longest valid UTF-8 prefix: the offset of the first bad byte.
        valid_up_to: usize,
    },
    /// The body is not well-formed JSON (or is nested more than 128 levels deep).
    Syntax {
        /// serde_json's description.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (byte in the line) of the error.
        column: usize,
    },
    /// The body is JSON but not a two-element array `[msg_type, msg_data]`.
    NotAPair {
        /// What was found instead.
        found: JsonKind,
        /// Number of elements when `found` is [`JsonKind::Array`], else 0.
        len: usize,
    },
    /// `msg_type` or `msg_data` does not match the requested Rust type ([`decode_as`]).
    Data {
        /// serde_json's description.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (byte in the line) of the error.
        column: usize,
    },
    /// The body is longer than the configured maximum.
    TooLong {
        /// Length of the body in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A map key that Python's `json.dumps` cannot write either (not a string, number,
    /// bool or null).
    KeyMustBeString {
        /// The serde kind of the key (`"sequence"`, `"map"`, `"bytes"`, ...).
        found: &'static str,
    },
    /// A `Serialize` implementation reported an error.
    Encode {
        /// Its message.
        message: String,
    },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::BadUtf8 { valid_up_to } => {
                write!(
                    f,
                    "JSON message is not UTF-8 (bad byte at offset {valid_up_to})"
                )
            }
            JsonError::Syntax {
                message,
                line,
                column,
            } => write!(f, "bad JSON at line {line} column {column}: {message}"),
            JsonError::NotAPair { found, len } => {
                if *found == JsonKind::Array {
                    write!(
                        f,
                        "expected a [msg_type, msg_data] array, found an array of {len} elements"
                    )
                } else {
                    write!(f, "expected a [msg_type, msg_data] array, found {found}")
                }
            }
            JsonError::Data {
                message,
                line,
                column,
            } => write!(
                f,
                "JSON message does not match the type at line {line} column {column}: {message}"
            ),
            JsonError::TooLong { len, max } => {
                write!(f, "JSON message of {len} bytes is over the limit of {max}")
            }
            JsonError::KeyMustBeString { found } => {
                write!(
                    f,
                    "JSON object key must be a string, number, bool or null, found {found}"
                )
            }
            JsonError::Encode { message } => write!(f, "JSON encode error: {message}"),
        }
    }
}

impl ser::StdError for JsonError {}

impl ser::Error for JsonError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        JsonError::Encode {
            message: msg.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Encode `[msg_type, data]` exactly as Python's `json.dumps([msg_type, msg_data])` does
/// (socktools' message body; frame it with a big-endian u32 length).
///
/// ```
/// # use framewire::message::socktools::encode;
/// assert_eq!(encode(&"chat", &"hé")?, br#"["chat", "h\u00e9"]"#);
/// let data = serde_json::json!({"text": "hi", "n": [1, 2.5, null]});
/// assert_eq!(encode(&1, &data)?, br#"[1, {"text": "hi", "n": [1, 2.5, null]}]"#);
/// # Ok::<(), framewire::message::socktools::JsonError>(())
/// ```
pub fn encode<T: Serialize + ?Sized, D: Serialize + ?Sized>(
    msg_type: &T,
    data: &D,
) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    encode_into(msg_type, data, &mut out)?;
    Ok(out)
}

/// Append the body of [`encode`] to `out` and return its length. On error `out` is left as
/// it was.
pub fn encode_into<T: Serialize + ?Sized, D: Serialize + ?Sized>(
    msg_type: &T,
    data: &D,
    out: &mut Vec<u8>,
) -> Result<usize, JsonError> {
    let start = out.len();
    let result = (|| {
        out.push(b'[');
        msg_type.serialize(&mut Serializer::new(out))?;
        out.extend_from_slice(b", ");
        data.serialize(&mut Serializer::new(out))?;
        out.push(b']');
        Ok(())
    })();
    match result {
        Ok(()) => Ok(out.len() - start),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Python's `json.dumps(value)` with default arguments (`ensure_ascii=True`).
///
/// ```
/// # use framewire::message::socktools::to_vec;
/// assert_eq!(to_vec(&[1.0, 1e16, 1e-5, f64::NAN])?, b"[1.0, 1e+16, 1e-05, NaN]");
/// # Ok::<(), framewire::message::socktools::JsonError>(())
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    value.serialize(&mut Serializer::new(&mut out))?;
    Ok(out)
}

/// Python's `json.dumps(value, ensure_ascii=False)`: non-ASCII characters as raw UTF-8.
pub fn to_vec_unicode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    value.serialize(&mut Serializer::with_ensure_ascii(&mut out, false))?;
    Ok(out)
}

/// A serde serializer that appends Python `json.dumps` output (default separators) to a
/// `Vec<u8>`. Use it as `value.serialize(&mut Serializer::new(&mut out))`.
#[derive(Debug)]
pub struct Serializer<'a> {
    out: &'a mut Vec<u8>,
    ensure_ascii: bool,
}

impl<'a> Serializer<'a> {
    /// A serializer with Python's default `ensure_ascii=True`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Serializer {
            out,
            ensure_ascii: true,
        }
    }

    /// A serializer with the given `ensure_ascii` setting.
    pub fn with_ensure_ascii(out: &'a mut Vec<u8>, ensure_ascii: bool) -> Self {
        Serializer { out, ensure_ascii }
    }
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn write_display(out: &mut Vec<u8>, value: impl fmt::Display) {
    // Writing into a Vec cannot fail.
    let _ = write!(VecWriter(out), "{value}");
}

/// A fixed buffer for Rust's shortest float formatting (at most 17 digits, a point, `e-324`).
struct FloatBuf {
    buf: [u8; 40],
    len: usize,
}

impl fmt::Write for FloatBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Append Python's `float.__repr__(value)` (as used by `json.dumps`) to `out`.
pub fn write_py_float(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
        return;
    }
    if value.is_sign_negative() {
        out.push(b'-');
    }
    // Rust's `{:e}` without precision prints the shortest digits that round-trip (like
    // Python's repr), as `d[.ddd]e[-]x`.
    let mut buf = FloatBuf {
        buf: [0; 40],
        len: 0,
    };
    write!(buf, "{:e}", value.abs()).expect("an f64 in exponent form fits in 40 bytes");
    let text = &buf.buf[..buf.len];
    let e_pos = text
        .iter()
        .position(|&b| b == b'e')
        .expect("`{:e}` output has an exponent");
    let (mantissa, exp_text) = (&text[..e_pos], &text[e_pos + 1..]);
    let mut digits = [0u8; 20];
    let mut n_digits = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        digits[n_digits] = b;
        n_digits += 1;
    }
    let digits = &digits[..n_digits];
    let (neg_exp, exp_digits) = match exp_text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, exp_text),
    };
    let exp_abs = exp_digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d - b'0'));
    let exp = if neg_exp { -exp_abs } else { exp_abs };
    // Python's float_repr_style 'short': decimal point position decpt = exp + 1; exponent
    // notation when decpt <= -4 or decpt > 16.
    if !(-4..16).contains(&exp) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        if exp_abs < 10 {
            out.push(b'0');
        }
        write_display(out, exp_abs);
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(digits);
    } else {
        let int_len = (exp + 1) as usize;
        if int_len < digits.len() {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        } else {
            out.extend_from_slice(digits);
            for _ in digits.len()..int_len {
                out.push(b'0');
            }
            out.extend_from_slice(b".0");
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

/// Append `s` as a JSON string the way Python's `json.dumps` writes it (see the module
/// documentation for the escapes).
pub fn write_py_str(out: &mut Vec<u8>, s: &str, ensure_ascii: bool) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let plain = if ensure_ascii {
            matches!(c, ' '..='~') && c != '"' && c != '\\'
        } else {
            c >= ' ' && c != '"' && c != '\\'
        };
        if plain {
            continue;
        }
        out.extend_from_slice(&bytes[plain_from..i]);
        plain_from = i + c.len_utf8();
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u_escape(out, *unit);
                }
            }
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

/// Compound serializer for sequences and maps: writes `", "` before every item but the first.
#[doc(hidden)]
#[derive(Debug)]
pub struct Compound<'s, 'a> {
    ser: &'s mut Serializer<'a>,
    first: bool,
    /// Closing bytes: `]`, `}`, or `}}` / `]}` for enum variants.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn separator(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.ser.out.extend_from_slice(b", ");
        }
    }

    fn finish(self) {
        self.ser.out.extend_from_slice(self.close);
    }

    fn key<K: Serialize + ?Sized>(&mut self, key: &K) -> Result<(), JsonError> {
        self.separator();
        key.serialize(KeySerializer {
            out: &mut *self.ser.out,
            ensure_ascii: self.ser.ensure_ascii,
        })?;
        self.ser.out.extend_from_slice(b": ");
        Ok(())
    }
}

impl<'s, 'a> Serializer<'a> {
    fn compound(&'s mut self, open: &[u8], close: &'static [u8]) -> Compound<'s, 'a> {
        self.out.extend_from_slice(open);
        Compound {
            ser: self,
            first: true,
            close,
        }
    }

    fn variant_open(&mut self, variant: &str) {
        self.out.push(b'{');
        write_py_str(self.out, variant, self.ensure_ascii);
        self.out.extend_from_slice(b": ");
    }
}

impl<'s, 'a> ser::Serializer for &'s mut Serializer<'a> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Compound<'s, 'a>;
    type SerializeTupleStruct = Compound<'s, 'a>;
    type SerializeTupleVariant = Compound<'s, 'a>;
    type SerializeMap = Compound<'s, 'a>;
    type SerializeStruct = Compound<'s, 'a>;
    type SerializeStructVariant = Compound<'s, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), JsonError> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<(), JsonError> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<(), JsonError> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<(), JsonError> {
        write_display(self.out, v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), JsonError> {
        write_display(self.out, v);
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), JsonError> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<(), JsonError> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<(), JsonError> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<(), JsonError> {
        write_display(self.out, v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), JsonError> {
        write_display(self.out, v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        write_py_float(self.out, v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        let mut buf = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }

    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        write_py_str(self.out, v, self.ensure_ascii);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), JsonError> {
        let mut seq = self.compound(b"[", b"]");
        for b in v {
            seq.separator();
            write_display(seq.ser.out, b);
        }
        seq.finish();
        Ok(())
    }

    fn serialize_none(self) -> Result<(), JsonError> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), JsonError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), JsonError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.variant_open(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'s, 'a>, JsonError> {
        Ok(self.compound(b"[", b"]"))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'s, 'a>, JsonError> {
        Ok(self.compound(b"[", b"]"))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>, JsonError> {
        Ok(self.compound(b"[", b"]"))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>, JsonError> {
        self.variant_open(variant);
        Ok(self.compound(b"[", b"]}"))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'s, 'a>, JsonError> {
        Ok(self.compound(b"{", b"}"))
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>, JsonError> {
        Ok(self.compound(b"{", b"}"))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>, JsonError> {
        self.variant_open(variant);
        Ok(self.compound(b"{", b"}}"))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        self.separator();
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        self.key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.key(key)?;
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> Result<(), JsonError> {
        self.finish();
        Ok(())
    }
}

/// Serializes a map key as a JSON string, converting scalars like Python's `json.dumps`.
struct KeySerializer<'o> {
    out: &'o mut Vec<u8>,
    ensure_ascii: bool,
}

impl KeySerializer<'_> {
    /// A key whose text needs no escaping (numbers, `true`, `null`, ...).
    fn quoted(self, write: impl FnOnce(&mut Vec<u8>)) {
        self.out.push(b'"');
        write(self.out);
        self.out.push(b'"');
    }
}

fn key_error<T>(found: &'static str) -> Result<T, JsonError> {
    Err(JsonError::KeyMustBeString { found })
}

impl ser::Serializer for KeySerializer<'_> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = ser::Impossible<(), JsonError>;
    type SerializeTuple = ser::Impossible<(), JsonError>;
    type SerializeTupleStruct = ser::Impossible<(), JsonError>;
    type SerializeTupleVariant = ser::Impossible<(), JsonError>;
    type SerializeMap = ser::Impossible<(), JsonError>;
    type SerializeStruct = ser::Impossible<(), JsonError>;
    type SerializeStructVariant = ser::Impossible<(), JsonError>;

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.quoted(|out| out.extend_from_slice(if v { b"true" } else { b"false" }));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), JsonError> {
        self.quoted(|out| write_display(out, v));
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        self.quoted(|out| write_py_float(out, v));
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        let mut buf = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }

    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        write_py_str(self.out, v, self.ensure_ascii);
        Ok(())
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), JsonError> {
        key_error("bytes")
    }

    fn serialize_none(self) -> Result<(), JsonError> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), JsonError> {
        self.quoted(|out| out.extend_from_slice(b"null"));
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), JsonError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), JsonError> {
        key_error("an enum variant with data")
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, JsonError> {
        key_error("a sequence")
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, JsonError> {
        key_error("a tuple")
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, JsonError> {
        key_error("a tuple struct")
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, JsonError> {
        key_error("an enum variant with data")
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, JsonError> {
        key_error("a map")
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, JsonError> {
        key_error("a struct")
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, JsonError> {
        key_error("an enum variant with data")
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Parse a socktools message body into `(msg_type, msg_data)` as [`serde_json::Value`]s
/// (at most [`DEFAULT_MAX_MESSAGE_LEN`] bytes).
///
/// ```
/// # use framewire::message::socktools::{decode, JsonError, JsonKind};
/// let (msg_type, data) = decode(br#"["chat", "h\u00e9"]"#)?;
/// assert_eq!((msg_type.as_str(), data.as_str()), (Some("chat"), Some("hé")));
/// assert_eq!(
///     decode(b"[1, 2, 3]"),
///     Err(JsonError::NotAPair { found: JsonKind::Array, len: 3 })
/// );
/// # Ok::<(), JsonError>(())
/// ```
pub fn decode(body: &[u8]) -> Result<(Value, Value), JsonError> {
    decode_as(body)
}

/// [`decode`] with an explicit maximum body length.
pub fn decode_with_max(body: &[u8], max: usize) -> Result<(Value, Value), JsonError> {
    decode_as_with_max(body, max)
}

/// Parse a socktools message body `[msg_type, msg_data]` into typed values (at most
/// [`DEFAULT_MAX_MESSAGE_LEN`] bytes). Strings may be borrowed from `body` where they
/// contain no escapes.
///
/// ```
/// # use framewire::message::socktools::decode_as;
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Chat { text: String, n: Vec<Option<f64>> }
/// let (kind, chat): (u32, Chat) = decode_as(br#"[1, {"text": "hi", "n": [1, 2.5, null]}]"#)?;
/// assert_eq!(kind, 1);
/// assert_eq!(chat, Chat { text: "hi".into(), n: vec![Some(1.0), Some(2.5), None] });
/// # Ok::<(), framewire::message::socktools::JsonError>(())
/// ```
pub fn decode_as<'de, T: Deserialize<'de>, D: Deserialize<'de>>(
    body: &'de [u8],
) -> Result<(T, D), JsonError> {
    decode_as_with_max(body, DEFAULT_MAX_MESSAGE_LEN)
}

/// [`decode_as`] with an explicit maximum body length.
pub fn decode_as_with_max<'de, T: Deserialize<'de>, D: Deserialize<'de>>(
    body: &'de [u8],
    max: usize,
) -> Result<(T, D), JsonError> {
    if body.len() > max {
        return Err(JsonError::TooLong {
            len: body.len(),
            max,
        });
    }
    let text = core::str::from_utf8(body).map_err(|e| JsonError::BadUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let shape = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let result = PairSeed {
        shape: &shape,
        marker: core::marker::PhantomData,
    }
    .deserialize(&mut de)
    .and_then(|pair| de.end().map(|()| pair));
    result.map_err(|e| {
        if let Some((found, len)) = shape.get() {
            return JsonError::NotAPair { found, len };
        }
        let (message, line, column) = (e.to_string(), e.line(), e.column());
        match e.classify() {
            serde_json::error::Category::Data => JsonError::Data {
                message,
                line,
                column,
            },
            _ => JsonError::Syntax {
                message,
                line,
                column,
            },
        }
    })
}

/// Deserializes `[T, D]`, recording a wrong shape in `shape` so that it can be reported as
/// [`JsonError::NotAPair`] rather than as a serde message.
struct PairSeed<'c, T, D> {
    shape: &'c Cell<Option<(JsonKind, usize)>>,
    marker: core::marker::PhantomData<fn() -> (T, D)>,
}

impl<'de, T: Deserialize<'de>, D: Deserialize<'de>> DeserializeSeed<'de> for PairSeed<'_, T, D> {
    type Value = (T, D);

    fn deserialize<De: de::Deserializer<'de>>(self, deserializer: De) -> Result<(T, D), De::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<T, D> PairSeed<'_, T, D> {
    fn wrong<E: de::Error, R>(&self, found: JsonKind, len: usize) -> Result<R, E> {
        self.shape.set(Some((found, len)));
        Err(E::custom("expected a [msg_type, msg_data] array"))
    }
}

impl<'de, T: Deserialize<'de>, D: Deserialize<'de>> Visitor<'de> for PairSeed<'_, T, D> {
    type Value = (T, D);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [msg_type, msg_data] array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(T, D), A::Error> {
        let Some(msg_type) = seq.next_element::<T>()? else {
            return self.wrong(JsonKind::Array, 0);
        };
        let Some(data) = seq.next_element::<D>()? else {
            return self.wrong(JsonKind::Array, 1);
        };
        let mut len = 2;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
        }
        if len != 2 {
            return self.wrong(JsonKind::Array, len);
        }
        Ok((msg_type, data))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(T, D), E> {
        self.wrong(JsonKind::Null, 0)
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<(T, D), E> {
        self.wrong(JsonKind::Bool, 0)
    }

    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<(T, D), E> {
        self.wrong(JsonKind::Number, 0)
    }

    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<(T, D), E> {
        self.wrong(JsonKind::Number, 0)
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<(T, D), E> {
        self.wrong(JsonKind::Number, 0)
    }

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<(T, D), E> {
        self.wrong(JsonKind::String, 0)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(T, D), A::Error> {
        // Consume the object so that a later syntax error inside it is not reported instead.
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.wrong(JsonKind::Object, 0)
    }
}

#[cfg(test)]
// Test-local helper types sit next to the assertions that use them.
#[allow(clippy::items_after_statements, clippy::too_many_lines)]
mod tests {
    use super::*;
    use alloc::{format, vec};
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    use crate::testutil::unhex as hex;

    /// A Python value rebuilt exactly from the tagged description of the vector file.
    #[derive(Debug, Clone)]
    enum Py {
        None,
        Bool(bool),
        Int(i128),
        Float(f64),
        Str(String),
        List(Vec<Py>),
        Dict(Vec<(String, Py)>),
    }

    impl Serialize for Py {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::{SerializeMap, SerializeSeq};
            match self {
                Py::None => s.serialize_unit(),
                Py::Bool(b) => s.serialize_bool(*b),
                Py::Int(i) => s.serialize_i128(*i),
                Py::Float(f) => s.serialize_f64(*f),
                Py::Str(v) => s.serialize_str(v),
                Py::List(items) => {
                    let mut seq = s.serialize_seq(Some(items.len()))?;
                    for item in items {
                        seq.serialize_element(item)?;
                    }
                    seq.end()
                }
                Py::Dict(entries) => {
                    let mut map = s.serialize_map(Some(entries.len()))?;
                    for (k, v) in entries {
                        map.serialize_entry(k, v)?;
                    }
                    map.end()
                }
            }
        }
    }

    impl Py {
        fn from_tagged(v: &Value) -> Py {
            let (tag, inner) = v.as_object().unwrap().iter().next().unwrap();
            let utf8 = |h: &Value| String::from_utf8(hex(h.as_str().unwrap())).unwrap();
            match tag.as_str() {
                "n" => Py::None,
                "b" => Py::Bool(inner.as_bool().unwrap()),
                "i" => Py::Int(inner.as_str().unwrap().parse().unwrap()),
                "f" => Py::Float(f64::from_bits(
                    u64::from_str_radix(inner.as_str().unwrap(), 16).unwrap(),
                )),
                "s" => Py::Str(utf8(inner)),
                "l" => Py::List(
                    inner
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(Py::from_tagged)
                        .collect(),
                ),
                "o" => Py::Dict(
                    inner
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|kv| (utf8(&kv[0]), Py::from_tagged(&kv[1])))
                        .collect(),
                ),
                other => panic!("unknown tag {other}"),
            }
        }

        /// Whether serde_json can read Python's text of this value back exactly (finite
        /// floats, 64-bit integers).
        fn json_exact(&self) -> bool {
            match self {
                Py::Int(i) => i64::try_from(*i).is_ok() || u64::try_from(*i).is_ok(),
                Py::Float(f) => f.is_finite(),
                Py::List(items) => items.iter().all(Py::json_exact),
                Py::Dict(entries) => entries.iter().all(|(_, v)| v.json_exact()),
                _ => true,
            }
        }
    }

    struct Vector {
        name: String,
        value: Py,
        ascii: Vec<u8>,
        unicode: Vec<u8>,
    }

    fn vectors() -> Vec<Vector> {
        include_str!("../../testdata/pyjson_vectors.jsonl")
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                Vector {
                    name: v["name"].as_str().unwrap().into(),
                    value: Py::from_tagged(&v["value"]),
                    ascii: hex(v["ascii"].as_str().unwrap()),
                    unicode: hex(v["unicode"].as_str().unwrap()),
                }
            })
            .collect()
    }

    fn show(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn python_json_dumps_vectors_byte_identical() {
        let vectors = vectors();
        assert!(
            vectors.len() > 3000,
            "vector file truncated: {}",
            vectors.len()
        );
        let mut pairs = 0;
        for v in &vectors {
            let ascii = to_vec(&v.value).unwrap();
            assert_eq!(
                show(&ascii),
                show(&v.ascii),
                "ensure_ascii=True: {}",
                v.name
            );
            let unicode = to_vec_unicode(&v.value).unwrap();
            assert_eq!(
                show(&unicode),
                show(&v.unicode),
                "ensure_ascii=False: {}",
                v.name
            );
            if let Py::List(items) = &v.value {
                if let [msg_type, data] = items.as_slice() {
                    assert_eq!(
                        encode(msg_type, data).unwrap(),
                        v.ascii,
                        "encode: {}",
                        v.name
                    );
                    pairs += 1;
                }
            }
        }
        assert!(pairs >= 7, "pairs: {pairs}");
    }

    #[test]
    fn python_output_decodes_and_reencodes_identically() {
        let mut checked = 0;
        for v in vectors().iter().filter(|v| v.value.json_exact()) {
            let value: Value = serde_json::from_slice(&v.ascii).unwrap();
            assert_eq!(show(&to_vec(&value).unwrap()), show(&v.ascii), "{}", v.name);
            let unicode: Value = serde_json::from_slice(&v.unicode).unwrap();
            assert_eq!(value, unicode, "{}", v.name);
            if let Ok((t, d)) = decode(&v.ascii) {
                assert_eq!(encode(&t, &d).unwrap(), v.ascii, "{}", v.name);
            }
            checked += 1;
        }
        assert!(checked > 3000, "checked {checked}");
    }

    #[test]
    fn wire_md_golden_messages() {
        let body = encode(&1, &json!({"text": "hi", "n": [1, 2.5, null]})).unwrap();
        let framed = hex("00000028\
             5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d");
        assert_eq!(body, framed[4..]);
        assert_eq!((body.len() as u32).to_be_bytes(), framed[..4]);

        // With a typed struct: declaration order is Python's insertion order.
        #[derive(serde::Serialize, Deserialize, Debug, PartialEq)]
        struct Chat {
            text: String,
            n: (u8, f64, Option<u8>),
        }
        let chat = Chat {
            text: "hi".into(),
            n: (1, 2.5, None),
        };
        assert_eq!(encode(&1u8, &chat).unwrap(), body);
        assert_eq!(decode_as::<u8, Chat>(&body).unwrap(), (1, chat));

        let body = encode("chat", "hé").unwrap();
        let framed = hex("000000135b2263686174222c2022685c7530306539225d");
        assert_eq!(body, framed[4..]);
        assert_eq!((body.len() as u32).to_be_bytes(), framed[..4]);
        assert_eq!(decode(&body).unwrap(), (json!("chat"), json!("hé")));
    }

    #[test]
    fn wire_md_golden_frames_through_length_prefixed() {
        use crate::framing::{Decode, Framing, LengthPrefixed};
        let framing = LengthPrefixed::new();
        for (framed, msg_type, data) in [
            (
                "000000285b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d",
                json!(1),
                json!({"text": "hi", "n": [1, 2.5, null]}),
            ),
            (
                "000000135b2263686174222c2022685c7530306539225d",
                json!("chat"),
                json!("hé"),
            ),
        ] {
            let framed = hex(framed);
            let body = encode(&msg_type, &data).unwrap();
            let mut out = vec![0xa5; framed.len() + 1];
            let n = framing.encode(&body, &mut out).unwrap();
            assert_eq!(out[..n], framed[..]);
            let Decode::Frame { len, payload } = framing.clone().decode(&framed).unwrap() else {
                panic!("no frame")
            };
            assert_eq!(len, framed.len());
            assert_eq!(decode(&framed[payload]).unwrap(), (msg_type, data));
        }
    }

    #[test]
    fn python_float_repr() {
        // Each right-hand side is Python's repr() of the left-hand side.
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (2.5, "2.5"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (123_456.789, "123456.789"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (9_007_199_254_740_993.0, "9007199254740992.0"),
            (1.234_567_890_123_456_7e16, "1.2345678901234568e+16"),
            (0.000_123_45, "0.00012345"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, expected) in cases {
            let mut out = Vec::new();
            write_py_float(&mut out, *value);
            assert_eq!(show(&out), *expected, "{value:?}");
        }
        // f32 is printed as the f64 it widens to, like Python would print that double.
        assert_eq!(to_vec(&0.1f32).unwrap(), b"0.10000000149011612");
    }

    #[test]
    fn non_string_keys_like_python() {
        // json.dumps({1: "a"}), json.dumps({1.5: 0, -0.0: 1}), json.dumps({True: 0, None: 1})
        let mut ints = BTreeMap::new();
        ints.insert(1, "a");
        assert_eq!(to_vec(&ints).unwrap(), br#"{"1": "a"}"#);
        assert_eq!(
            to_vec(&[(1.5f64, 0), (-0.0, 1)].into_iter().collect::<Vec<_>>()).unwrap(),
            b"[[1.5, 0], [-0.0, 1]]"
        );
        struct Keys;
        impl Serialize for Keys {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeMap;
                let mut m = s.serialize_map(None)?;
                m.serialize_entry(&1.5f64, &0)?;
                m.serialize_entry(&-0.0f64, &1)?;
                m.serialize_entry(&true, &2)?;
                m.serialize_entry(&(), &3)?;
                m.serialize_entry(&f64::NAN, &4)?;
                m.serialize_entry(&'é', &5)?;
                m.end()
            }
        }
        // json.dumps({1.5: 0, -0.0: 1, True: 2, None: 3, float("nan"): 4, "é": 5})
        assert_eq!(
            show(&to_vec(&Keys).unwrap()),
            r#"{"1.5": 0, "-0.0": 1, "true": 2, "null": 3, "NaN": 4, "\u00e9": 5}"#
        );
        let mut bad = BTreeMap::new();
        bad.insert(vec![1], 2);
        assert_eq!(
            to_vec(&bad),
            Err(JsonError::KeyMustBeString {
                found: "a sequence"
            })
        );
    }

    #[test]
    fn rust_only_shapes_follow_serde_json() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tup(u8, u8),
            Rec { a: u8 },
        }
        let v = (E::Unit, E::New(1), E::Tup(1, 2), E::Rec { a: 3 });
        let ours = to_vec(&v).unwrap();
        assert_eq!(
            show(&ours),
            r#"["Unit", {"New": 1}, {"Tup": [1, 2]}, {"Rec": {"a": 3}}]"#
        );
        // The same as serde_json apart from the separators.
        let compact = serde_json::to_string(&v).unwrap();
        assert_eq!(show(&ours).replace(", ", ",").replace(": ", ":"), compact);
        assert_eq!(
            to_vec(&serde_bytes_like(&[1, 2])).unwrap(),
            b"[1, 2]".to_vec()
        );
    }

    struct BytesValue<'a>(&'a [u8]);
    impl Serialize for BytesValue<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    fn serde_bytes_like(b: &[u8]) -> BytesValue<'_> {
        BytesValue(b)
    }

    #[test]
    fn encode_into_appends_and_restores_on_error() {
        let mut out = b"prefix".to_vec();
        let n = encode_into(&1, &"x", &mut out).unwrap();
        assert_eq!(n, 8);
        assert_eq!(out, b"prefix[1, \"x\"]");
        let mut bad = BTreeMap::new();
        bad.insert((1, 2), 3);
        assert!(encode_into(&1, &bad, &mut out).is_err());
        assert_eq!(out, b"prefix[1, \"x\"]");

        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: ser::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no thanks"))
            }
        }
        assert_eq!(
            encode(&0, &Fails),
            Err(JsonError::Encode {
                message: "no thanks".into()
            })
        );
    }

    #[test]
    fn decode_errors_are_typed() {
        assert_eq!(
            decode(b"[1, \"\xff\"]"),
            Err(JsonError::BadUtf8 { valid_up_to: 5 })
        );
        match decode(b"[1,\n {\"a\" 2}]") {
            Err(JsonError::Syntax { line, column, .. }) => assert_eq!((line, column), (2, 7)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode(b"[1, 2"), Err(JsonError::Syntax { .. })));
        assert!(matches!(decode(b""), Err(JsonError::Syntax { .. })));
        assert!(matches!(decode(b"[1, 2] x"), Err(JsonError::Syntax { .. })));
        // Python writes NaN for float('nan'); serde_json does not read it.
        assert!(matches!(decode(b"[1, NaN]"), Err(JsonError::Syntax { .. })));
        let not_pair = |found, len| Err(JsonError::NotAPair { found, len });
        assert_eq!(decode(b"[]"), not_pair(JsonKind::Array, 0));
        assert_eq!(decode(b"[1]"), not_pair(JsonKind::Array, 1));
        assert_eq!(decode(b"[1, 2, [3], {}]"), not_pair(JsonKind::Array, 4));
        assert_eq!(decode(b"{\"a\": [1, 2]}"), not_pair(JsonKind::Object, 0));
        assert_eq!(decode(b"\"x\""), not_pair(JsonKind::String, 0));
        assert_eq!(decode(b" 12 "), not_pair(JsonKind::Number, 0));
        assert_eq!(decode(b"-1.5"), not_pair(JsonKind::Number, 0));
        assert_eq!(decode(b"true"), not_pair(JsonKind::Bool, 0));
        assert_eq!(decode(b"null"), not_pair(JsonKind::Null, 0));
        // A syntax error inside a non-pair is reported as a syntax error.
        assert!(matches!(
            decode(b"{\"a\": }"),
            Err(JsonError::Syntax { .. })
        ));
        match decode_as::<u8, String>(b"[300, \"x\"]") {
            Err(JsonError::Data { line, column, .. }) => assert_eq!((line, column), (1, 4)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_as::<u8, String>(b"[1, 2]"),
            Err(JsonError::Data { .. })
        ));
        assert_eq!(
            decode_with_max(b"[1, 2]", 5),
            Err(JsonError::TooLong { len: 6, max: 5 })
        );
        assert!(decode_with_max(b"[1, 2]", 6).is_ok());
        // serde_json's recursion limit bounds nesting.
        let deep = format!("[1, {}{}]", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            decode(deep.as_bytes()),
            Err(JsonError::Syntax { .. })
        ));
    }

    #[test]
    fn decode_borrows_unescaped_strings() {
        let body = br#"["chat", {"from": "ann", "text": "hi"}]"#;
        #[derive(Deserialize)]
        struct Msg<'a> {
            from: &'a str,
            text: &'a str,
        }
        let (kind, msg): (&str, Msg<'_>) = decode_as(body).unwrap();
        assert_eq!((kind, msg.from, msg.text), ("chat", "ann", "hi"));
    }

    #[test]
    fn errors_display_their_numbers() {
        let text = JsonError::NotAPair {
            found: JsonKind::Array,
            len: 3,
        }
        .to_string();
        assert!(text.contains("3 elements"), "{text}");
        assert!(JsonError::TooLong { len: 9, max: 8 }
            .to_string()
            .contains("9 bytes"));
        assert!(JsonError::BadUtf8 { valid_up_to: 4 }
            .to_string()
            .contains("offset 4"));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((".*", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn py_float_text_round_trips(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assume!(f.is_finite());
            let mut out = Vec::new();
            write_py_float(&mut out, f);
            let text = core::str::from_utf8(&out).unwrap();
            let back: f64 = text.parse().unwrap();
            prop_assert_eq!(back.to_bits(), bits, "{}", text);
            // Fixed notation always has a point, exponent notation a sign.
            prop_assert!(text.contains('.') || text.contains("e+") || text.contains("e-"));
        }

        #[test]
        fn strings_are_ascii_and_round_trip(s in ".*") {
            let ascii = to_vec(&s).unwrap();
            prop_assert!(ascii.iter().all(|&b| (0x20..0x7f).contains(&b)));
            prop_assert_eq!(serde_json::from_slice::<String>(&ascii).unwrap(), s.clone());
            let unicode = to_vec_unicode(&s).unwrap();
            prop_assert_eq!(serde_json::from_slice::<String>(&unicode).unwrap(), s);
        }

        #[test]
        fn messages_round_trip(t in arb_json(), d in arb_json()) {
            let body = encode(&t, &d).unwrap();
            let (t2, d2) = decode(&body).unwrap();
            prop_assert_eq!(&t2, &t);
            prop_assert_eq!(&d2, &d);
            prop_assert_eq!(encode(&t2, &d2).unwrap(), body);
        }
    }
}
