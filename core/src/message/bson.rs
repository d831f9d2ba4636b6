//! Serde-typed BSON documents, compatible with py-bson 0.5.10 (`bson.dumps` / `bson.loads`).
//!
//! A py-bson peer sends and receives exactly one BSON document per message (WIRE.md §1); the
//! framing layer cuts the stream into documents, this module turns a document into a Rust
//! value and back through serde and the [`bson`] crate.
//!
//! * [`to_vec`] / [`encode_into`] / [`from_slice`]: the serde encoder and decoder of the
//!   `bson` crate (its non-human-readable mode), with a length limit
//!   ([`DEFAULT_MAX_DOCUMENT_LEN`]) and a typed [`BsonError`].
//! * [`to_document`] / [`from_document`]: the same through a dynamic [`Document`]
//!   (`to_document(x)?.to_vec()` gives the same bytes as `to_vec(x)`).
//! * [`to_vec_pybson`] / [`pybson_normalize`]: bytes identical to what `bson.dumps` produces
//!   for the same data (see *Integers* below), refusing element types py-bson cannot read.
//! * [`PyInt`] / [`PyUInt`] (and the field helpers [`py_int`] / [`py_uint`]): integers that
//!   pick the BSON type the way py-bson does and accept every integer type py-bson sends.
//!
//! # Type mapping
//!
//! | py-bson value | BSON type | Rust type that reads it | Rust type that writes the same bytes |
//! |---|---|---|---|
//! | `bool` | 0x08 | `bool` | `bool` |
//! | `int` in i32 range | 0x10 | `i32`, `i64`, [`PyInt`], [`PyUInt`] (if ≥ 0) | `i32`, `i8`, `i16`, `u8`, `u16`, [`PyInt`], [`PyUInt`] |
//! | `int` in i64 range, outside i32 | 0x12 | `i64`, [`PyInt`], [`PyUInt`] (if ≥ 0) | `i64`, [`PyInt`], [`PyUInt`] |
//! | `int` 2⁶³ … 2⁶⁴−1 | **0x11** | [`PyUInt`], [`bson::Timestamp`] | [`PyUInt`], [`timestamp_from_py_uint64`] |
//! | `float`, `Decimal` | 0x01 | `f64` | `f64`, `f32` |
//! | `str` | 0x02 | `String`, `&str` (borrowed from the input) | `String`, `&str`, `char` |
//! | `bytes` | 0x05 subtype 0 | [`bson::Binary`] | [`bson::Binary`] with `BinarySubtype::Generic` |
//! | `uuid.UUID` | 0x05 subtype 4 | [`bson::Uuid`] | [`bson::Uuid`] |
//! | `datetime` | 0x09 | [`bson::DateTime`] | [`bson::DateTime`] |
//! | `None` | 0x0A | `Option<T>`, `()` | `None`, `()` |
//! | `dict` | 0x03 | structs, maps, [`Document`] | structs, maps, [`Document`] (key order kept) |
//! | `list`, `tuple` | 0x04 | `Vec<T>`, tuples, arrays | `Vec<T>`, tuples, arrays |
//!
//! # Integers: where the `bson` crate and py-bson differ
//!
//! py-bson chooses the integer type by *value*: int32 when the value fits, else int64, else
//! its non-standard uint64 (type 0x11, which the BSON spec calls "Timestamp"). The `bson`
//! crate chooses by *Rust type*: `i64` is always int64 (0x12), `u32` is int64 too, and a `u64`
//! above `i64::MAX` is an encode error. So `struct { n: i64 }` holding 5 encodes as
//! `… 12 6e00 0500000000000000 …` where py-bson writes `… 10 6e00 05000000 …`. Both sides
//! *read* either form, so this only matters when bytes must be identical (golden tests,
//! signatures, caches). To get py-bson's bytes, either
//!
//! * use [`PyInt`] / [`PyUInt`] fields (or `#[serde(with = "py_int")]` on an `i64` field and
//!   `#[serde(with = "py_uint")]` on a `u64` field), or
//! * encode with [`to_vec_pybson`], which narrows every int64 that fits into int32.
//!
//! A value py-bson encodes as 0x11 reaches Rust as a [`bson::Timestamp`] whose `time` is the
//! high and `increment` the low 32 bits of the integer; a plain `u64` field cannot read it,
//! [`PyUInt`] / [`py_uint`] can ([`py_uint64_from_timestamp`] converts by hand).
//!
//! # What a py-bson peer makes of other types
//!
//! py-bson reads only types 0x01–0x05, 0x07–0x0A and 0x10–0x12, and a document echoed by
//! py-bson comes back changed (vectors `echo_*` in `testdata/pybson_vectors.txt`):
//!
//! * ObjectId (0x07) is read as the 24 ASCII hex digits, and sent back as *binary subtype 0*
//!   holding those digits ([`object_id_from_pybson`] turns them back into an ObjectId).
//! * Binary subtype 3 (legacy UUID) is read as a UUID and sent back as subtype 4; any other
//!   subtype is sent back as subtype 0.
//! * int64 holding an i32-sized value comes back as int32, a small 0x11 value as int32.
//! * Other types (regex, JavaScript, decimal128, min/max key, …) make py-bson fail;
//!   [`to_vec_pybson`] refuses them with [`BsonError::Unsupported`].
//! * A top-level key `"$$__CLASS_NAME__$$"` makes py-bson look up a registered class and
//!   raise `MissingClassDefinition`; avoid that key.
//!
//! # Limits
//!
//! Every function checks the document length against a maximum, [`DEFAULT_MAX_DOCUMENT_LEN`]
//! (16 MiB, MongoDB's limit) unless a `*_with_max` variant is used. py-bson itself has no limit.
//! Decoding is strict where py-bson is lax: the declared length must equal the slice length
//! and the document must end in 0x00 (py-bson accepts a declared length ≤ 4 as `{}`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use bson::oid::ObjectId;
use bson::{Bson, Document, RawDocument, Timestamp};
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

/// Default maximum length of a document, in bytes (16 MiB, MongoDB's `maxBsonObjectSize`).
pub const DEFAULT_MAX_DOCUMENT_LEN: usize = 16 * 1024 * 1024;

/// The smallest valid document: the 4-byte length and the terminating 0x00 (`{}`).
pub const MIN_DOCUMENT_LEN: usize = 5;

/// What went wrong encoding or decoding a BSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BsonError {
    /// The value could not be encoded (not a map or struct at the top level, a key containing
    /// NUL, a `u64` above `i64::MAX` outside [`PyUInt`], ...).
    Encode {
        /// The `bson` crate's description of the problem.
        message: String,
    },
    /// The bytes are not a valid document, or do not match the target type.
    Decode {
        /// The `bson` crate's description of the problem.
        message: String,
    },
    /// The document is (or would be) longer than the configured maximum.
    TooLong {
        /// Length of the document in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Fewer bytes than the smallest document ([`MIN_DOCUMENT_LEN`]).
    TooShort {
        /// Number of bytes given.
        len: usize,
    },
    /// The document's own length field disagrees with the number of bytes given.
    LengthMismatch {
        /// The length stored in the first 4 bytes (little-endian int32).
        declared: i32,
        /// The number of bytes given.
        actual: usize,
    },
    /// The last byte of the document is not the 0x00 terminator.
    MissingTerminator {
        /// The byte found instead.
        found: u8,
    },
    /// An integer outside py-bson's range −2⁶³ … 2⁶⁴−1, or outside the target Rust type.
    IntOutOfRange {
        /// The integer.
        value: i128,
    },
    /// An element type py-bson 0.5.10 cannot decode (see the module documentation).
    Unsupported {
        /// The BSON element type byte.
        element_type: u8,
        /// Dotted path of the element (`"a.b.0"`).
        path: String,
    },
}

impl fmt::Display for BsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BsonError::Encode { message } => write!(f, "BSON encode error: {message}"),
            BsonError::Decode { message } => write!(f, "BSON decode error: {message}"),
            BsonError::TooLong { len, max } => {
                write!(f, "BSON document of {len} bytes is over the limit of {max}")
            }
            BsonError::TooShort { len } => write!(
                f,
                "BSON document of {len} bytes is shorter than the minimum of {MIN_DOCUMENT_LEN}"
            ),
            BsonError::LengthMismatch { declared, actual } => write!(
                f,
                "BSON document declares {declared} bytes but {actual} were given"
            ),
            BsonError::MissingTerminator { found } => {
                write!(f, "BSON document ends in {found:#04x} instead of 0x00")
            }
            BsonError::IntOutOfRange { value } => {
                write!(f, "integer {value} is out of range")
            }
            BsonError::Unsupported { element_type, path } => write!(
                f,
                "element {path:?} has BSON type {element_type:#04x}, which py-bson cannot decode"
            ),
        }
    }
}

impl std::error::Error for BsonError {}

fn encode_error(e: &bson::error::Error) -> BsonError {
    BsonError::Encode {
        message: e.to_string(),
    }
}

fn decode_error(e: &bson::error::Error) -> BsonError {
    BsonError::Decode {
        message: e.to_string(),
    }
}

/// Serialize `value` (a struct, a map or a [`Document`]) as one BSON document, at most
/// [`DEFAULT_MAX_DOCUMENT_LEN`] bytes long.
///
/// ```
/// # use framewire::message::bson::to_vec;
/// #[derive(serde::Serialize)]
/// struct Hello<'a> { hello: &'a str }
/// // bson.dumps({"hello": "world"})
/// assert_eq!(
///     to_vec(&Hello { hello: "world" })?,
///     b"\x16\0\0\0\x02hello\0\x06\0\0\0world\0\0"
/// );
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, BsonError> {
    to_vec_with_max(value, DEFAULT_MAX_DOCUMENT_LEN)
}

/// [`to_vec`] with an explicit maximum document length.
pub fn to_vec_with_max<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>, BsonError> {
    let mut buf = Vec::new();
    encode_into_with_max(value, &mut buf, max)?;
    Ok(buf)
}

/// Append `value` as one BSON document to `buf` and return its length; at most
/// [`DEFAULT_MAX_DOCUMENT_LEN`] bytes.
///
/// On error `buf` is left as it was. To get a `bytes::BytesMut`, encode into a `Vec` and
/// convert it with `BytesMut::from(vec)` (no copy).
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<usize, BsonError> {
    encode_into_with_max(value, buf, DEFAULT_MAX_DOCUMENT_LEN)
}

/// [`encode_into`] with an explicit maximum document length.
pub fn encode_into_with_max<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<usize, BsonError> {
    let start = buf.len();
    // The bson crate's raw serializer takes a sized value; a reference is one.
    let result = bson::serialize_to_buffer(&value, buf);
    let len = buf.len() - start;
    match result {
        Err(e) => {
            buf.truncate(start);
            Err(encode_error(&e))
        }
        Ok(()) if len > max => {
            buf.truncate(start);
            Err(BsonError::TooLong { len, max })
        }
        Ok(()) if len < MIN_DOCUMENT_LEN => {
            // A top-level value that is not a document (the raw serializer writes its bare
            // encoding, or nothing at all).
            buf.truncate(start);
            Err(BsonError::Encode {
                message: "the top-level value must serialize as a document (map or struct)".into(),
            })
        }
        Ok(()) => Ok(len),
    }
}

/// Check the envelope of a document: length at least [`MIN_DOCUMENT_LEN`] and at most `max`,
/// declared length equal to `bytes.len()`, trailing 0x00.
pub fn check_document(bytes: &[u8], max: usize) -> Result<(), BsonError> {
    let len = bytes.len();
    if len > max {
        return Err(BsonError::TooLong { len, max });
    }
    if len < MIN_DOCUMENT_LEN {
        return Err(BsonError::TooShort { len });
    }
    let declared = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if usize::try_from(declared).ok() != Some(len) {
        return Err(BsonError::LengthMismatch {
            declared,
            actual: len,
        });
    }
    match bytes[len - 1] {
        0 => Ok(()),
        found => Err(BsonError::MissingTerminator { found }),
    }
}

/// Deserialize one BSON document (exactly `bytes`, at most [`DEFAULT_MAX_DOCUMENT_LEN`]).
///
/// Strings can be borrowed from `bytes` (`&'de str` fields).
///
/// ```
/// # use framewire::message::bson::from_slice;
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Small { seq: i64, pad: bson::Binary }
/// // bson.dumps({"seq": 0, "pad": b"x" * 26})
/// let doc = b"\x32\0\0\0\x10seq\0\0\0\0\0\x05pad\0\x1a\0\0\0\0xxxxxxxxxxxxxxxxxxxxxxxxxx\0";
/// let small: Small = from_slice(doc)?;
/// assert_eq!(small.seq, 0);
/// assert_eq!(small.pad.bytes, b"xxxxxxxxxxxxxxxxxxxxxxxxxx");
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, BsonError> {
    from_slice_with_max(bytes, DEFAULT_MAX_DOCUMENT_LEN)
}

/// [`from_slice`] with an explicit maximum document length.
pub fn from_slice_with_max<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    max: usize,
) -> Result<T, BsonError> {
    check_document(bytes, max)?;
    bson::deserialize_from_slice(bytes).map_err(|e| decode_error(&e))
}

/// Serialize `value` into a dynamic [`Document`], through the same (non-human-readable)
/// encoder as [`to_vec`], so `to_document(x)?.to_vec()` equals `to_vec(x)`.
pub fn to_document<T: Serialize + ?Sized>(value: &T) -> Result<Document, BsonError> {
    let bytes = to_vec(value)?;
    document_from_slice(&bytes)
}

/// Deserialize a `T` from a dynamic [`Document`], through the same decoder as [`from_slice`].
pub fn from_document<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, BsonError> {
    let bytes = document_to_vec(doc)?;
    from_slice(&bytes)
}

/// Parse one BSON document (exactly `bytes`, at most [`DEFAULT_MAX_DOCUMENT_LEN`]) into a
/// dynamic [`Document`]. Binary subtype 0x11 values appear as [`Bson::Timestamp`].
pub fn document_from_slice(bytes: &[u8]) -> Result<Document, BsonError> {
    check_document(bytes, DEFAULT_MAX_DOCUMENT_LEN)?;
    let raw = RawDocument::from_bytes(bytes).map_err(|e| decode_error(&e))?;
    Document::try_from(raw).map_err(|e| decode_error(&e))
}

/// Encode a dynamic [`Document`] (at most [`DEFAULT_MAX_DOCUMENT_LEN`] bytes).
pub fn document_to_vec(doc: &Document) -> Result<Vec<u8>, BsonError> {
    let bytes = doc.to_vec().map_err(|e| encode_error(&e))?;
    if bytes.len() > DEFAULT_MAX_DOCUMENT_LEN {
        return Err(BsonError::TooLong {
            len: bytes.len(),
            max: DEFAULT_MAX_DOCUMENT_LEN,
        });
    }
    Ok(bytes)
}

/// Serialize `value` to the bytes py-bson's `bson.dumps` would produce for the same data:
/// integers narrowed like py-bson ([`pybson_normalize`]), types py-bson cannot read refused.
///
/// ```
/// # use framewire::message::bson::{to_vec, to_vec_pybson};
/// #[derive(serde::Serialize)]
/// struct N { n: i64 }
/// // bson.dumps({"n": 5}): int32
/// assert_eq!(to_vec_pybson(&N { n: 5 })?, b"\x0c\0\0\0\x10n\0\x05\0\0\0\0");
/// // the plain encoder keeps the Rust type: int64
/// assert_eq!(to_vec(&N { n: 5 })?, b"\x10\0\0\0\x12n\0\x05\0\0\0\0\0\0\0\0");
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub fn to_vec_pybson<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, BsonError> {
    let doc = to_pybson_document(value)?;
    document_to_vec(&doc)
}

/// [`to_document`] followed by [`pybson_normalize`].
pub fn to_pybson_document<T: Serialize + ?Sized>(value: &T) -> Result<Document, BsonError> {
    let mut doc = to_document(value)?;
    pybson_normalize(&mut doc)?;
    Ok(doc)
}

/// Rewrite `doc` (recursively) into the form py-bson would encode: every int64 that fits in
/// an int32 becomes an int32. Fails with [`BsonError::Unsupported`] on an element type that
/// py-bson 0.5.10 cannot decode (anything but double, string, document, array, binary,
/// ObjectId, bool, datetime, null, int32, 0x11 and int64).
pub fn pybson_normalize(doc: &mut Document) -> Result<(), BsonError> {
    let mut path = String::new();
    normalize_document(doc, &mut path)
}

fn normalize_document(doc: &mut Document, path: &mut String) -> Result<(), BsonError> {
    for (key, value) in doc.iter_mut() {
        let len = path.len();
        if len > 0 {
            path.push('.');
        }
        path.push_str(key);
        normalize_value(value, path)?;
        path.truncate(len);
    }
    Ok(())
}

fn normalize_value(value: &mut Bson, path: &mut String) -> Result<(), BsonError> {
    match value {
        Bson::Int64(n) => {
            if let Ok(small) = i32::try_from(*n) {
                *value = Bson::Int32(small);
            }
        }
        Bson::Document(doc) => normalize_document(doc, path)?,
        Bson::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                if len > 0 {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                normalize_value(item, path)?;
                path.truncate(len);
            }
        }
        Bson::Double(_)
        | Bson::String(_)
        | Bson::Binary(_)
        | Bson::ObjectId(_)
        | Bson::Boolean(_)
        | Bson::DateTime(_)
        | Bson::Null
        | Bson::Int32(_)
        | Bson::Timestamp(_) => {}
        other => {
            return Err(BsonError::Unsupported {
                element_type: other.element_type() as u8,
                path: path.clone(),
            })
        }
    }
    Ok(())
}

/// The [`Bson`] value py-bson would encode for the Python integer `value`: int32 when it fits,
/// else int64, else (2⁶³ … 2⁶⁴−1) the non-standard 0x11 as a [`Timestamp`]. Python raises
/// for anything else; this returns [`BsonError::IntOutOfRange`].
pub fn py_int_to_bson(value: i128) -> Result<Bson, BsonError> {
    if let Ok(n) = i32::try_from(value) {
        Ok(Bson::Int32(n))
    } else if let Ok(n) = i64::try_from(value) {
        Ok(Bson::Int64(n))
    } else if let Ok(n) = u64::try_from(value) {
        Ok(Bson::Timestamp(timestamp_from_py_uint64(n)))
    } else {
        Err(BsonError::IntOutOfRange { value })
    }
}

/// The Python integer py-bson would decode from `value`: int32, int64, or 0x11 read as an
/// unsigned 64-bit integer. `None` for any other type.
pub fn py_int_from_bson(value: &Bson) -> Option<i128> {
    match value {
        Bson::Int32(n) => Some(i128::from(*n)),
        Bson::Int64(n) => Some(i128::from(*n)),
        Bson::Timestamp(ts) => Some(i128::from(py_uint64_from_timestamp(*ts))),
        _ => None,
    }
}

/// The [`Timestamp`] whose 8 wire bytes are py-bson's uint64 `value` (type 0x11, little-endian):
/// `increment` is the low 32 bits, `time` the high 32 bits.
///
/// ```
/// # use framewire::message::bson::{timestamp_from_py_uint64, py_uint64_from_timestamp};
/// let ts = timestamp_from_py_uint64((1 << 63) + (1 << 32) + 7);
/// assert_eq!((ts.time, ts.increment), (0x8000_0001, 7));
/// assert_eq!(py_uint64_from_timestamp(ts), (1 << 63) + (1 << 32) + 7);
/// ```
pub const fn timestamp_from_py_uint64(value: u64) -> Timestamp {
    Timestamp {
        time: (value >> 32) as u32,
        increment: value as u32,
    }
}

/// py-bson's uint64 (type 0x11) from the [`Timestamp`] the `bson` crate decodes it to: the
/// inverse of [`timestamp_from_py_uint64`].
pub const fn py_uint64_from_timestamp(ts: Timestamp) -> u64 {
    ((ts.time as u64) << 32) | ts.increment as u64
}

/// The ObjectId a py-bson peer sends back after receiving one: py-bson decodes ObjectId
/// (0x07) as its 24 lower-case hex digits (`bytes`), and echoes them as binary subtype 0.
pub fn object_id_from_pybson(hex: &[u8]) -> Result<ObjectId, BsonError> {
    let text = core::str::from_utf8(hex).map_err(|e| BsonError::Decode {
        message: format!("ObjectId hex digits are not UTF-8: {e}"),
    })?;
    if text.len() != 24 {
        return Err(BsonError::Decode {
            message: format!("ObjectId needs 24 hex digits, got {} bytes", text.len()),
        });
    }
    ObjectId::parse_str(text).map_err(|e| decode_error(&e))
}

/// A signed integer that is encoded like a Python `int` in py-bson: int32 (0x10) when it
/// fits, else int64 (0x12).
///
/// It decodes from int32, int64, and from py-bson's uint64 (0x11) when the value is at most
/// `i64::MAX` (else the error names the value). Use [`PyUInt`] for py-bson integers
/// ≥ 2⁶³.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PyInt(pub i64);

/// An unsigned integer that is encoded like a Python `int` in py-bson: int32 (0x10) up to
/// `i32::MAX`, int64 (0x12) up to `i64::MAX`, above that py-bson's non-standard uint64
/// (0x11, which the BSON spec and the `bson` crate call Timestamp).
///
/// It decodes from int32 and int64 (if not negative) and from 0x11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PyUInt(pub u64);

impl From<i64> for PyInt {
    fn from(value: i64) -> Self {
        PyInt(value)
    }
}

impl From<PyInt> for i64 {
    fn from(value: PyInt) -> Self {
        value.0
    }
}

impl From<u64> for PyUInt {
    fn from(value: u64) -> Self {
        PyUInt(value)
    }
}

impl From<PyUInt> for u64 {
    fn from(value: PyUInt) -> Self {
        value.0
    }
}

fn serialize_py_int<S: Serializer>(value: i128, serializer: S) -> Result<S::Ok, S::Error> {
    if let Ok(n) = i32::try_from(value) {
        serializer.serialize_i32(n)
    } else if let Ok(n) = i64::try_from(value) {
        serializer.serialize_i64(n)
    } else if let Ok(n) = u64::try_from(value) {
        timestamp_from_py_uint64(n).serialize(serializer)
    } else {
        Err(serde::ser::Error::custom(BsonError::IntOutOfRange {
            value,
        }))
    }
}

fn deserialize_py_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i128, D::Error> {
    let value = Bson::deserialize(deserializer)?;
    py_int_from_bson(&value).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected a py-bson integer (int32, int64 or 0x11), found BSON type {:#04x}",
            value.element_type() as u8
        ))
    })
}

fn out_of_range<E: serde::de::Error>(value: i128) -> E {
    E::custom(BsonError::IntOutOfRange { value })
}

impl Serialize for PyInt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_py_int(i128::from(self.0), serializer)
    }
}

impl<'de> Deserialize<'de> for PyInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserialize_py_int(deserializer)?;
        i64::try_from(value)
            .map(PyInt)
            .map_err(|_| out_of_range(value))
    }
}

impl Serialize for PyUInt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_py_int(i128::from(self.0), serializer)
    }
}

impl<'de> Deserialize<'de> for PyUInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserialize_py_int(deserializer)?;
        u64::try_from(value)
            .map(PyUInt)
            .map_err(|_| out_of_range(value))
    }
}

/// `#[serde(with = "framewire::message::bson::py_int")]` on an `i64` field: encode and decode
/// it like [`PyInt`].
///
/// ```
/// # use framewire::message::bson::{py_int, to_vec};
/// #[derive(serde::Serialize)]
/// struct N { #[serde(with = "py_int")] n: i64 }
/// assert_eq!(to_vec(&N { n: 5 })?, b"\x0c\0\0\0\x10n\0\x05\0\0\0\0");
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub mod py_int {
    use super::{Deserialize, Deserializer, PyInt, Serialize, Serializer};

    /// Serialize an `i64` as [`PyInt`] does.
    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        PyInt(*value).serialize(serializer)
    }

    /// Deserialize an `i64` as [`PyInt`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        PyInt::deserialize(deserializer).map(|n| n.0)
    }
}

/// `#[serde(with = "framewire::message::bson::py_uint")]` on a `u64` field: encode and decode
/// it like [`PyUInt`] (values ≥ 2⁶³ as py-bson's 0x11).
///
/// ```
/// # use framewire::message::bson::{py_uint, from_slice};
/// #[derive(serde::Deserialize)]
/// struct U { #[serde(with = "py_uint")] u: u64 }
/// // bson.dumps({"u": 2**64 - 1})
/// let u: U = from_slice(b"\x10\0\0\0\x11u\0\xff\xff\xff\xff\xff\xff\xff\xff\0")?;
/// assert_eq!(u.u, u64::MAX);
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub mod py_uint {
    use super::{Deserialize, Deserializer, PyUInt, Serialize, Serializer};

    /// Serialize a `u64` as [`PyUInt`] does.
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        PyUInt(*value).serialize(serializer)
    }

    /// Deserialize a `u64` as [`PyUInt`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        PyUInt::deserialize(deserializer).map(|n| n.0)
    }
}
